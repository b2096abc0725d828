-- The reranker's feature vector as it was when the item was shown, so that
-- training learns from what the scorer actually saw.
ALTER TABLE impressions ADD COLUMN features real[];
