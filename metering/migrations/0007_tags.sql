-- A request's tags (`metadata.tags`, the `x-litellm-tags` header, its key's and team's tags), for
-- spend by tag (/spend/tags, /global/spend/report?group_by=tag).
ALTER TABLE usage ADD COLUMN IF NOT EXISTS tags Array(String) DEFAULT [] AFTER team_id;
