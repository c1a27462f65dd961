package redis

import "github.com/redis/rueidis"

// The Lua scripts that change the log. Each runs atomically in Redis, so every node sees the
// same order, and a duplicate ID check and the append it guards cannot interleave with
// another node's.
//
// KEYS: the stream, the ID index (a sorted set: member update ID, score Seq), the meta hash
// (head, first, bytes, sfirst) and the cost list (the memory.Cost of every retained update,
// oldest first), then the system stream and its ID index (system updates: subscription
// events, control updates). Both streams take their Seqs from the one head, so Seqs have
// gaps in each; the cost list's length is the number of retained publishers' updates. Seqs
// are the sequence part of stream IDs "0-<seq>", formatted with %d: Lua numbers are
// doubles, exact up to 2^53.
//
// Both scripts do every read and every check before their first write: Redis does not roll
// a script back when a command fails half-way, so an error (out of memory, a key of the wrong
// type) leaves the log unchanged.

// boundsLua drops the oldest publishers' updates while the log holds more than size of
// them (count, the new one included), or more than maxBytes of summed cost (the newest
// update is always kept). It expects head, first, bytes, count, size, maxBytes and past (the
// first Seq when every stored update is dropped) set, and sets drop to the number of updates
// to drop and first to the Seq of the oldest one kept.
const boundsLua = `
local drop = 0
while count > size or (bytes > maxBytes and count > 1) do
	local c = tonumber(redis.call('LINDEX', KEYS[4], drop))
	if not c then
		return redis.error_reply('HERALD cost list ' .. KEYS[4] .. ' is shorter than the log (keys edited by hand?)')
	end
	bytes = bytes - c
	drop = drop + 1
	count = count - 1
end
if drop > 0 then
	local e = redis.call('XRANGE', KEYS[1], string.format('0-%d', first), '+', 'COUNT', drop + 1)
	if #e < drop then
		return redis.error_reply('HERALD stream ' .. KEYS[1] .. ' is shorter than its cost list (keys edited by hand?)')
	end
	if e[drop + 1] then
		first = tonumber(string.sub(e[drop + 1][1], 3))
	else
		first = past
	end
end
`

// trimLua removes the updates that boundsLua dropped from the stream, the index and the cost
// list, and records the new bounds.
const trimLua = `
if drop > 0 then
	redis.call('LTRIM', KEYS[4], drop, -1)
	redis.call('XTRIM', KEYS[1], 'MINID', string.format('0-%d', first))
	redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%d', first))
end
redis.call('HSET', KEYS[3], 'head', string.format('%d', head), 'first', string.format('%d', first), 'bytes', string.format('%d', bytes))
`

// systemTrimLua keeps the newest systemSize system updates and drops the index entries of
// the others.
const systemTrimLua = `
redis.call('XTRIM', KEYS[5], 'MAXLEN', systemSize)
local oldest = redis.call('XRANGE', KEYS[5], '-', '+', 'COUNT', 1)
if oldest[1] then
	redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. string.sub(oldest[1][1], 3))
	redis.call('HSET', KEYS[3], 'sfirst', string.sub(oldest[1][1], 3))
else
	redis.call('DEL', KEYS[6])
end
`

// appendScript appends one update.
//
// ARGV: update ID, encoded update, its cost, size, maxBytes, retry ("1" when this call
// repeats one whose outcome was lost with its connection), system ("1" for a system
// update), systemSize.
//
// It returns {1, seq} once stored, or {0, seq} when a retained update (at seq) of either
// class already has the ID: nothing is written then. On a retry, an identical retained
// update is taken for the one the lost call stored, and {1, its seq} is returned.
//
// Each stream entry has two fields: u, the encoded update, and f, a Seq before which no
// update of either class is retained any more once it was appended, which lets tailing
// nodes honour the bounds without asking.
var appendScript = rueidis.NewLuaScript(`
local stream, old = KEYS[1], redis.call('ZSCORE', KEYS[2], ARGV[1])
if not old then
	stream, old = KEYS[5], redis.call('ZSCORE', KEYS[6], ARGV[1])
end
if old then
	old = string.format('%d', tonumber(old))
	if ARGV[6] == '1' then
		local e = redis.call('XRANGE', stream, '0-' .. old, '0-' .. old)
		if e[1] and e[1][2][1] == 'u' and e[1][2][2] == ARGV[2] then
			return {1, old}
		end
	end
	return {0, old}
end
local m = redis.call('HMGET', KEYS[3], 'head', 'first', 'bytes', 'sfirst')
local head = (tonumber(m[1]) or 0) + 1
local first = tonumber(m[2]) or 1
local sfirst = tonumber(m[4]) or head
local systemSize = tonumber(ARGV[8])
if ARGV[7] == '1' then
	local f = string.format('%d', math.min(first, sfirst))
	redis.call('XADD', KEYS[5], string.format('0-%d', head), 'u', ARGV[2], 'f', f)
	redis.call('ZADD', KEYS[6], head, ARGV[1])
	redis.call('HSET', KEYS[3], 'head', string.format('%d', head))
` + systemTrimLua + `
	return {1, string.format('%d', head)}
end
local bytes = (tonumber(m[3]) or 0) + tonumber(ARGV[3])
local count = redis.call('LLEN', KEYS[4]) + 1
local size, maxBytes, past = tonumber(ARGV[4]), tonumber(ARGV[5]), head
` + boundsLua + `
redis.call('XADD', KEYS[1], string.format('0-%d', head), 'u', ARGV[2], 'f', string.format('%d', math.min(first, sfirst)))
redis.call('ZADD', KEYS[2], head, ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[3])
` + trimLua + `
return {1, string.format('%d', head)}
`)

// boundScript applies the bounds without appending, for Open: lowered bounds take effect at
// once. ARGV: size, maxBytes, systemSize. It returns the number of publishers' updates
// dropped.
var boundScript = rueidis.NewLuaScript(`
local systemSize = tonumber(ARGV[3])
local dropped = 0
local m = redis.call('HMGET', KEYS[3], 'head', 'first', 'bytes')
if m[1] then
	local head, first, bytes = tonumber(m[1]), tonumber(m[2]) or 1, tonumber(m[3]) or 0
	local count = redis.call('LLEN', KEYS[4])
	local size, maxBytes, past = tonumber(ARGV[1]), tonumber(ARGV[2]), head + 1
` + boundsLua + `
	if drop > 0 then
` + trimLua + `
	end
	dropped = drop
end
` + systemTrimLua + `
return dropped
`)
