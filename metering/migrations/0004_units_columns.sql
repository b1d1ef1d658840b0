-- Units other than tokens that some operations are priced by: images generated, seconds of audio
-- transcribed, characters of speech, rerank search units.
ALTER TABLE usage ADD COLUMN IF NOT EXISTS images UInt32 DEFAULT 0 AFTER cache_write_tokens;
ALTER TABLE usage ADD COLUMN IF NOT EXISTS audio_seconds Float64 DEFAULT 0 AFTER images;
ALTER TABLE usage ADD COLUMN IF NOT EXISTS characters UInt32 DEFAULT 0 AFTER audio_seconds;
ALTER TABLE usage ADD COLUMN IF NOT EXISTS search_units UInt32 DEFAULT 0 AFTER characters;
