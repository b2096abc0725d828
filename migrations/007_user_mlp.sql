-- The NeuMF user MLP embedding of an NCF version (NULL for MF and imported versions).
ALTER TABLE user_embeddings ADD COLUMN mlp real[];
