package index

import (
	"context"

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

// StreamerRowsOffHeap reads mv's streamer rows as a build does and says
// how many floats it read and whether they lie outside the Go heap.
func (m *Manager) StreamerRowsOffHeap(mv lr.ModelVersion) (floats int, outside bool, err error) {
	_, buf, err := m.loadSide(context.Background(), mv, lr.SideStreamer, true, 0)
	if err != nil {
		return 0, false, err
	}
	return len(buf.vecs), offheap.Contains(offheap.Addr(buf.vecs)), nil
}
