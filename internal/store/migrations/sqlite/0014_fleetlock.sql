-- FleetLock groups (Zincati, Flatcar): one row per group that has ever
-- been locked. A pre-reboot locks its group's row before counting the
-- group's holders (node_holds rows of holder_kind 'fleetlock', holder the
-- group), so that two servers never both give out a group's last slot.
CREATE TABLE fleetlock_groups (
	name TEXT PRIMARY KEY
);
