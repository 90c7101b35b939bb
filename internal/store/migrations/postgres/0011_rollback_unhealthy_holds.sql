-- A node still unhealthy after its rollback (phase rollback-unhealthy)
-- stays out of service: like a failed node it keeps its hold, so that no
-- other rollout changes it and fleet budgets count it unavailable, until
-- a human resolves it or the rollout ends.
CREATE OR REPLACE FUNCTION node_holds_release() RETURNS trigger AS $$ BEGIN IF NEW.phase NOT IN ('queued', 'running', 'verifying', 'failed', 'rolling-back', 'unknown', 'rollback-unhealthy') THEN DELETE FROM node_holds WHERE node_id = NEW.node_id AND holder_kind = 'rollout' AND holder = NEW.rollout_id; END IF; RETURN NULL; END $$ LANGUAGE plpgsql;
