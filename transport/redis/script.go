package redis

import "github.com/redis/rueidis"

// The Lua scripts that change the log. Each runs atomically in Redis, so every node sees the
// same order, and a duplicate ID check and the append it guards cannot interleave with
// another node's.
//
// KEYS: the stream, the ID index (a sorted set: member update ID, score Seq), the meta hash
// (head, first, bytes) and the cost list (the memory.Cost of every retained update, oldest
// first). Seqs are the sequence part of stream IDs "0-<seq>", formatted with %d: Lua numbers
// are doubles, exact up to 2^53.
//
// Both scripts do every read and every check before their first write: Redis does not roll
// a script back when a command fails half-way, so an error (out of memory, a key of the wrong
// type) leaves the log unchanged.

// boundsLua drops the oldest updates while the log holds more than size updates, or more
// than maxBytes of summed cost (the newest update is always kept). It expects head, first,
// bytes, size and maxBytes set, and sets drop to the number of updates to drop.
const boundsLua = `
local drop = 0
while head - first + 1 > size or (bytes > maxBytes and first < head) do
	local c = tonumber(redis.call('LINDEX', KEYS[4], drop))
	if not c then
		return redis.error_reply('HERALD cost list ' .. KEYS[4] .. ' is shorter than the log (keys edited by hand?)')
	end
	bytes = bytes - c
	drop = drop + 1
	first = first + 1
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

// appendScript appends one update.
//
// ARGV: update ID, encoded update, its cost, size, maxBytes, retry ("1" when this call
// repeats one whose outcome was lost with its connection).
//
// It returns {1, seq} once stored, or {0, seq} when a retained update (at seq) already has
// the ID: nothing is written then. On a retry, an identical retained update is taken for the
// one the lost call stored, and {1, its seq} is returned.
//
// Each stream entry has two fields: u, the encoded update, and f, the first retained Seq once
// it was appended, which lets tailing nodes honour the bounds without asking.
var appendScript = rueidis.NewLuaScript(`
local old = redis.call('ZSCORE', KEYS[2], ARGV[1])
if old then
	old = string.format('%d', tonumber(old))
	if ARGV[6] == '1' then
		local e = redis.call('XRANGE', KEYS[1], '0-' .. old, '0-' .. old)
		if e[1] and e[1][2][1] == 'u' and e[1][2][2] == ARGV[2] then
			return {1, old}
		end
	end
	return {0, old}
end
local m = redis.call('HMGET', KEYS[3], 'head', 'first', 'bytes')
local head = (tonumber(m[1]) or 0) + 1
local first = tonumber(m[2]) or 1
local bytes = (tonumber(m[3]) or 0) + tonumber(ARGV[3])
local size, maxBytes = tonumber(ARGV[4]), tonumber(ARGV[5])
` + boundsLua + `
redis.call('XADD', KEYS[1], string.format('0-%d', head), 'u', ARGV[2], 'f', string.format('%d', first))
redis.call('ZADD', KEYS[2], head, ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[3])
` + trimLua + `
return {1, string.format('%d', head)}
`)

// boundScript applies the bounds without appending, for Open: lowered bounds take effect at
// once. ARGV: size, maxBytes. It returns the number of updates dropped.
var boundScript = rueidis.NewLuaScript(`
local m = redis.call('HMGET', KEYS[3], 'head', 'first', 'bytes')
if not m[1] then
	return 0
end
local head, first, bytes = tonumber(m[1]), tonumber(m[2]) or 1, tonumber(m[3]) or 0
local size, maxBytes = tonumber(ARGV[1]), tonumber(ARGV[2])
` + boundsLua + `
if drop == 0 then
	return 0
end
` + trimLua + `
return drop
`)
