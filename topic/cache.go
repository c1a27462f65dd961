package topic

import (
	"hash/maphash"
	"sync"
)

const (
	// maxShards bounds the number of shards of a cache: enough to spread lock traffic over the
	// cores of a typical hub machine.
	maxShards = 32
	// minShardEntries keeps small caches in few shards, so that a shard is not so small that it
	// is emptied by nearly every insertion.
	minShardEntries = 16
)

// cache is a bounded map safe for concurrent use. It is split into shards, each with its own
// lock and its own bound, so that readers on different keys rarely touch the same cache line and
// a full shard is trimmed without stopping the others. It is a cache, not a store: an entry may
// disappear at any time.
type cache[K comparable, V any] struct {
	seed     maphash.Seed
	hash     func(maphash.Seed, K) uint64
	mask     uint64
	perShard int
	shards   []cacheShard[K, V]
}

type cacheShard[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
	_  [64]byte // keep the locks of neighbouring shards on different cache lines
}

// newCache returns a cache holding at most size entries, or nil if size <= 0. A nil cache is
// valid: get always misses and put does nothing.
func newCache[K comparable, V any](size int, hash func(maphash.Seed, K) uint64) *cache[K, V] {
	if size <= 0 {
		return nil
	}
	n := 1
	for n < maxShards && size/(2*n) >= minShardEntries {
		n *= 2
	}
	c := &cache[K, V]{
		seed:     maphash.MakeSeed(),
		hash:     hash,
		mask:     uint64(n - 1),
		perShard: size / n,
		shards:   make([]cacheShard[K, V], n),
	}
	for i := range c.shards {
		c.shards[i].m = make(map[K]V)
	}
	return c
}

func (c *cache[K, V]) shard(k K) *cacheShard[K, V] {
	return &c.shards[c.hash(c.seed, k)&c.mask]
}

func (c *cache[K, V]) get(k K) (v V, ok bool) {
	if c == nil {
		return v, false
	}
	sh := c.shard(k)
	sh.mu.RLock()
	v, ok = sh.m[k]
	sh.mu.RUnlock()
	return v, ok
}

// put stores v under k unless k is already present, and returns the value now stored, so that
// goroutines racing to fill the same key all end up with the same value. When the shard is full,
// about half of its entries, picked by Go's randomised map iteration order, are dropped first.
func (c *cache[K, V]) put(k K, v V) V {
	if c == nil {
		return v
	}
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.m[k]; ok {
		return old
	}
	if len(sh.m) >= c.perShard {
		drop := len(sh.m) - c.perShard/2
		for key := range sh.m {
			if drop == 0 {
				break
			}
			delete(sh.m, key)
			drop--
		}
	}
	sh.m[k] = v
	return v
}

// len returns the number of entries, for tests and metrics.
func (c *cache[K, V]) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
