package recall

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	lr "github.com/liverecall/liverecall"
)

// IntegritySource loads bans and blocks (postgres.DB implements it).
type IntegritySource interface {
	BannedStreamers(ctx context.Context) ([]lr.StreamerID, error)
	UserBlocks(ctx context.Context) (map[lr.UserID][]lr.StreamerID, error)
}

type integritySnapshot struct {
	banned  map[lr.StreamerID]bool
	blocked map[lr.UserID][]lr.StreamerID
	at      time.Time
}

// IntegrityCache is an Integrity held in memory and refreshed from its
// source: requests never wait for the database. Until the first load
// succeeds nobody is banned or blocked, and a failed refresh keeps the last
// good data (the failure is logged).
type IntegrityCache struct {
	src IntegritySource
	log *slog.Logger
	cur atomic.Pointer[integritySnapshot]
}

// NewIntegrityCache returns an empty cache over src.
func NewIntegrityCache(src IntegritySource, log *slog.Logger) *IntegrityCache {
	c := &IntegrityCache{src: src, log: log}
	c.cur.Store(&integritySnapshot{})
	return c
}

// Refresh reloads bans and blocks now.
func (c *IntegrityCache) Refresh(ctx context.Context) error {
	banned, err := c.src.BannedStreamers(ctx)
	if err != nil {
		return err
	}
	blocked, err := c.src.UserBlocks(ctx)
	if err != nil {
		return err
	}
	s := &integritySnapshot{banned: make(map[lr.StreamerID]bool, len(banned)), blocked: blocked, at: time.Now()}
	for _, id := range banned {
		s.banned[id] = true
	}
	c.cur.Store(s)
	return nil
}

// Run refreshes every interval until ctx ends.
func (c *IntegrityCache) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("integrity refresh failed; keeping the last good bans and blocks", "err", err)
			}
		}
	}
}

// Banned reports whether streamer id is banned.
func (c *IntegrityCache) Banned(id lr.StreamerID) bool { return c.cur.Load().banned[id] }

// Blocked returns the streamers u blocked (shared: do not modify).
func (c *IntegrityCache) Blocked(u lr.UserID) []lr.StreamerID { return c.cur.Load().blocked[u] }
