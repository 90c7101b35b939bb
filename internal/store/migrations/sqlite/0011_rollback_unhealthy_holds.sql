-- A node still unhealthy after its rollback (phase rollback-unhealthy)
-- stays out of service: like a failed node it keeps its hold, so that no
-- other rollout changes it and fleet budgets count it unavailable, until
-- a human resolves it or the rollout ends.
DROP TRIGGER node_holds_release;
CREATE TRIGGER node_holds_release AFTER UPDATE OF phase ON rollout_nodes
WHEN NEW.phase NOT IN ('queued', 'running', 'verifying', 'failed', 'rolling-back', 'unknown', 'rollback-unhealthy')
BEGIN DELETE FROM node_holds WHERE node_id = NEW.node_id AND holder_kind = 'rollout' AND holder = NEW.rollout_id; END;
