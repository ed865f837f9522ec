# SQL integrity checks for `make integrity-check` (ops-health --sql): one
# NAME=QUERY per line; each query returns one number, 0 meaning healthy.
# Lines starting with # and empty lines are ignored.
orphaned_posts=SELECT count(*) FROM posts p LEFT JOIN subreddits s ON s.id = p.subreddit_id WHERE s.id IS NULL
invalid_indexes=SELECT count(*) FROM pg_index WHERE NOT indisvalid
