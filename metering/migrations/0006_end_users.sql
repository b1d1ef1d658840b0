-- The end user a request was for (its `user` field, LiteLLM's customer), for spend per end user.
ALTER TABLE usage ADD COLUMN IF NOT EXISTS end_user Nullable(String) AFTER team_id;
