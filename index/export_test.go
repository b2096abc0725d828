package index

import (
	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/offheap"
)

// ExtraArrays returns the addresses of the off-heap arrays of kind's extra
// serving version labelled version (nil when none is loaded), for tests
// that check a dropped version's memory is released.
func (m *Manager) ExtraArrays(kind lr.ModelKind, version string) []uintptr {
	e := m.slots[kind].extras.Load()
	if e == nil || e.byLabel[version] == nil {
		return nil
	}
	g := e.byLabel[version].graph
	return []uintptr{offheap.Addr(g.vecs), offheap.Addr(g.layer0)}
}
