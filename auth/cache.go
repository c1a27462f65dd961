package auth

import (
	"sync"
	"time"
)

// Bounds of the cache of verified tokens.
const (
	verifiedCacheSize = 4096
	verifiedCacheTTL  = time.Minute
)

// verifiedCache remembers the claims of tokens that passed verification, for at most
// verifiedCacheTTL, so that keys removed from a JWKS stop being honoured soon. It is bounded:
// when full it is emptied. The zero value is ready to use.
type verifiedCache struct {
	mu      sync.Mutex
	entries map[string]verifiedEntry
}

type verifiedEntry struct {
	claims *Claims
	until  time.Time
	gen    uint64 // the key set generation it was verified with
}

// get returns the cached claims of token, if fresh and verified with the key set of
// generation gen.
func (c *verifiedCache) get(token string, gen uint64) (*Claims, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[token]
	if !ok {
		return nil, false
	}
	if e.gen != gen || time.Now().After(e.until) {
		delete(c.entries, token)
		return nil, false
	}
	return e.claims, true
}

// put remembers the claims of a verified token.
func (c *verifiedCache) put(token string, claims *Claims, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= verifiedCacheSize {
		c.entries = make(map[string]verifiedEntry)
	}
	c.entries[token] = verifiedEntry{claims: claims, until: time.Now().Add(verifiedCacheTTL), gen: gen}
}
