-- Lists one session under its account.
--   KEYS[1] the list; ARGV[1] the session's expires_at, ARGV[2] its token hash (hex),
--   ARGV[3] now (unix seconds)
list_session(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 0
