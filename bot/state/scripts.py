"""Every Lua script the Redis twins send, by name.

Each runs atomically on one server; what it touches shares a hash tag (`bot.state.keys`), so
it stays within one hash slot on a Redis Cluster too. The comment above each says what its
`KEYS` and `ARGV` are, in order, and what it returns.
"""

# the store's ----------------------------------------------------------------------------

# Adds a keyword to a channel unless it is there already or the channel is at its cap
# (KEYS: subs, baseline, held; ARGV: keyword, record, cap, held JSON or '', seconds held);
# with a hold, once added, its first run is done and its preview's papers are held, at once.
ADD_SUBSCRIPTION = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'exists' end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 'full' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] ~= '' then
    redis.call('SADD', KEYS[2], ARGV[1])
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
    if redis.call('TTL', KEYS[3]) < tonumber(ARGV[5]) then
        redis.call('EXPIRE', KEYS[3], ARGV[5])
    end
end
return 'added'
"""


# Adds papers to one keyword's recent list (ARGV: cap, seconds kept, then id, score, JSON
# per paper), drops the oldest beyond the cap from the ids and the details alike, and
# keeps both keys for another ARGV[2] seconds.
SAVE_RECENT = """
local scored, details = {}, {}
local function flush()
    if #scored > 0 then
        redis.call('ZADD', KEYS[1], unpack(scored))
        redis.call('HSET', KEYS[2], unpack(details))
        scored, details = {}, {}
    end
end
for i = 3, #ARGV, 3 do
    table.insert(scored, ARGV[i + 1])
    table.insert(scored, ARGV[i])
    table.insert(details, ARGV[i])
    table.insert(details, ARGV[i + 2])
    if #scored >= 1000 then flush() end
end
flush()
local dropped = redis.call('ZRANGE', KEYS[1], 0, -tonumber(ARGV[1]) - 1)
if #dropped > 0 then
    redis.call('ZREM', KEYS[1], unpack(dropped))
    redis.call('HDEL', KEYS[2], unpack(dropped))
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return #dropped
"""

# Books the next start of a request paced `interval` ms apart for every replica (KEYS[1]
# holds the earliest next start, in ms of Redis's clock): 0 when booked now, otherwise the
# ms to wait before asking again. Urgent work (ARGV[2] = '1', the digest's) that has to wait
# sets KEYS[2] until half an interval past the slot it waits for: until then the others
# (commands) are told to wait, so the slot goes to it.
NEXT_START = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
if ARGV[2] == '1' then
    if free > now then
        redis.call('SET', KEYS[2], '1', 'PX', free - now + math.max(math.floor(interval / 2), 1))
        return free - now
    end
else
    local urgent = redis.call('PTTL', KEYS[2])
    if urgent > 0 or free > now then return math.max(urgent, free - now) end
end
redis.call('SET', KEYS[1], now + interval, 'PX', math.max(interval, 1))
return 0
"""


# Extends or deletes a lock only for the replica that holds it.
RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# Takes a channel's lock (KEYS[1]) for ARGV[1] (or keeps it, when it holds it) for ARGV[2] ms;
# holding it, notes the day's delivery attempt (KEYS[2]: ARGV[3] unless empty, for ARGV[4]
# seconds). Returns {1, the attempt noted before} or {0} when another owner holds the lock.
TAKE_CHANNEL = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {0} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] == '' then return {1} end
return {1, redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4], 'GET')}
"""
# The end of a channel's run, at once (KEYS: seen, baseline, listing day, the lock if any;
# ARGV: now, oldest score kept, seconds kept, the day or '', the lock's owner or '', the
# number n of seen ids, the n ids, then the keywords whose first run is done).
FINISH = """
local now, n = ARGV[1], tonumber(ARGV[6])
for first = 7, 6 + n, 500 do
    local scored = {}
    for i = first, math.min(first + 499, 6 + n) do
        table.insert(scored, now)
        table.insert(scored, ARGV[i])
    end
    redis.call('ZADD', KEYS[1], unpack(scored))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if #ARGV > 6 + n then redis.call('SADD', KEYS[2], unpack(ARGV, 7 + n)) end
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[3]) end
if KEYS[4] and redis.call('GET', KEYS[4]) == ARGV[5] then redis.call('DEL', KEYS[4]) end
"""
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# `acquire` for each of KEYS (owner ARGV[1], ARGV[2] ms): 1 where it was taken, else 0.
# On a single server only; a cluster's keys lie in several slots.
ACQUIRE_MANY = """
local taken = {}
for i, key in ipairs(KEYS) do
    taken[i] = redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
end
return taken
"""

# signals' (votes, saved papers, the week) -----------------------------------------------

# Presses `ARGV[3]` ('up' or 'down') for user ARGV[2] on paper ARGV[1].
# KEYS: up, down, voted, voted papers. ARGV: id, user, direction, now, paper JSON, cutoff,
# max papers, ttl seconds. Returns {up voters, down voters, the user's vote now}.
VOTE = """
local pid, user, dir = ARGV[1], ARGV[2], ARGV[3]
local function voters(key)
  local list = {}
  for u in string.gmatch(redis.call('HGET', key, pid) or '', '%S+') do list[#list + 1] = u end
  return list
end
local function without(list, who)
  local out = {}
  for _, u in ipairs(list) do if u ~= who then out[#out + 1] = u end end
  return out
end
local function put(key, list)
  if #list > 0 then redis.call('HSET', key, pid, table.concat(list, ' '))
  else redis.call('HDEL', key, pid) end
end
local this, other = KEYS[1], KEYS[2]
if dir == 'down' then this, other = KEYS[2], KEYS[1] end
local mine, theirs = voters(this), voters(other)
local kept = without(mine, user)
local state = 0
if #kept == #mine then
  kept[#kept + 1] = user
  theirs = without(theirs, user)
  state = 1
end
put(this, kept)
put(other, theirs)
if #kept + #theirs > 0 then
  redis.call('ZADD', KEYS[3], 'NX', ARGV[4], pid)
  redis.call('HSET', KEYS[4], pid, ARGV[5])
else
  redis.call('ZREM', KEYS[3], pid)
  redis.call('HDEL', KEYS[4], pid)
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[6])
local over = redis.call('ZCARD', KEYS[3]) - #gone - tonumber(ARGV[7])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[3], #gone, #gone + over - 1)) do
    gone[#gone + 1] = id
  end
end
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[3], id)
  for i = 1, 4 do if i ~= 3 then redis.call('HDEL', KEYS[i], id) end end
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[8]) end
if dir == 'down' then
  return {#theirs, #kept, state == 1 and -1 or 0}
end
return {#kept, #theirs, state}
"""

# The channel's newest ARGV[1] voted papers: {JSON, up voters, down voters, ...}.
TASTE = """
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1)) do
  local function count(key)
    local _, n = string.gsub(redis.call('HGET', key, id) or '', '%S+', '')
    return n
  end
  out[#out + 1] = redis.call('HGET', KEYS[4], id) or ''
  out[#out + 1] = count(KEYS[1])
  out[#out + 1] = count(KEYS[2])
end
return out
"""

# Saves paper ARGV[1] (JSON ARGV[2]) at ARGV[3], or takes it back when it was saved.
# KEYS: saved, saved papers. Returns 1 when the paper is saved now.
TOGGLE_SAVED = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""


# Replaces the saved copy of paper ARGV[1] by JSON ARGV[2] if the user still saves it.
# KEYS: saved, saved papers. Returns 1 when it was replaced.
REFRESH_SAVED = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# Notes papers (ARGV[5..]: id, JSON, ...) posted at ARGV[1]; forgets those posted before
# ARGV[2] and the oldest beyond ARGV[3]. KEYS: week, week papers, week savers. ARGV[4]: ttl.
NOTE_POSTED = """
for i = 5, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
local over = redis.call('ZCARD', KEYS[1]) - #gone - tonumber(ARGV[3])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], #gone, #gone + over - 1)) do
    gone[#gone + 1] = id
  end
end
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
"""

# User ARGV[2] saved (ARGV[3] = '1') or unsaved paper ARGV[1] from the channel: noted only
# for a paper of its week. KEYS: week, week savers. ARGV[4]: ttl.
NOTE_SAVER = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local list = {}
for u in string.gmatch(redis.call('HGET', KEYS[2], ARGV[1]) or '', '%S+') do
  if u ~= ARGV[2] then list[#list + 1] = u end
end
if ARGV[3] == '1' then list[#list + 1] = ARGV[2] end
if #list > 0 then redis.call('HSET', KEYS[2], ARGV[1], table.concat(list, ' '))
else redis.call('HDEL', KEYS[2], ARGV[1]) end
redis.call('EXPIRE', KEYS[2], ARGV[4])
return #list
"""

# alerts' -------------------------------------------------------------------------------

# Adds user ARGV[1] (what they know: ARGV[2]) to the savers of a paper, unless it has
# ARGV[3] savers already. KEYS: the savers hash. ARGV[4]: ttl seconds.
FOLLOW = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
   and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# What user ARGV[1] knows becomes ARGV[3] if it is still ARGV[2]. KEYS: the savers hash.
CLAIM = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
