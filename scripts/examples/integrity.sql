# SQL integrity checks and their repairs, for make integrity-check,
# integrity-clean-dry-run, integrity-clean TYPE=NAME and integrity-stats
# (scripts/integrity.sh); written for a reddit-cluster-map-like schema,
# adapt the tables to yours.
#
# NAME=QUERY is a check: one number, 0 meaning healthy; it runs read-only.
# fix NAME=STATEMENT repairs what the check NAME counts, BATCH rows at a
# time: one statement taking the batch size as $1. Lines starting with #
# and empty lines are ignored.

# Posts whose subreddit is gone.
posts=SELECT count(*) FROM posts p WHERE NOT EXISTS (SELECT 1 FROM subreddits s WHERE s.id = p.subreddit_id)
fix posts=DELETE FROM posts WHERE id IN (SELECT p.id FROM posts p WHERE NOT EXISTS (SELECT 1 FROM subreddits s WHERE s.id = p.subreddit_id) LIMIT $1)

# Comments whose post is gone.
comments=SELECT count(*) FROM comments c WHERE NOT EXISTS (SELECT 1 FROM posts p WHERE p.id = c.post_id)
fix comments=DELETE FROM comments WHERE id IN (SELECT c.id FROM comments c WHERE NOT EXISTS (SELECT 1 FROM posts p WHERE p.id = c.post_id) LIMIT $1)

# Graph links whose source or target node is gone.
graph-links=SELECT count(*) FROM graph_links l WHERE NOT EXISTS (SELECT 1 FROM graph_nodes n WHERE n.id = l.source) OR NOT EXISTS (SELECT 1 FROM graph_nodes n WHERE n.id = l.target)
fix graph-links=DELETE FROM graph_links WHERE ctid IN (SELECT l.ctid FROM graph_links l WHERE NOT EXISTS (SELECT 1 FROM graph_nodes n WHERE n.id = l.source) OR NOT EXISTS (SELECT 1 FROM graph_nodes n WHERE n.id = l.target) LIMIT $1)

# Graph nodes no link touches.
graph-nodes=SELECT count(*) FROM graph_nodes n WHERE NOT EXISTS (SELECT 1 FROM graph_links l WHERE l.source = n.id OR l.target = n.id)
fix graph-nodes=DELETE FROM graph_nodes WHERE id IN (SELECT n.id FROM graph_nodes n WHERE NOT EXISTS (SELECT 1 FROM graph_links l WHERE l.source = n.id OR l.target = n.id) LIMIT $1)

# Indexes a failed CREATE INDEX CONCURRENTLY left invalid (no repair: REINDEX them).
invalid_indexes=SELECT count(*) FROM pg_index WHERE NOT indisvalid
