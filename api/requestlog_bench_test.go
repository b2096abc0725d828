package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
)

// fixedPage answers every recall with the same page.
type fixedPage struct{ page *lr.Page }

func (f fixedPage) Recommend(context.Context, lr.RecommendRequest) (*lr.Page, error) {
	return f.page, nil
}
func (f fixedPage) Neighbors(context.Context, lr.NeighborsRequest) (*lr.Neighbors, error) {
	return &lr.Neighbors{}, nil
}

// BenchmarkRecallRequest is one POST /v1/recall through the whole
// middleware chain (request log at info level, metrics, strict decoding)
// with a recommender that does no work: what the HTTP layer costs.
func BenchmarkRecallRequest(b *testing.B) {
	reg := prometheus.NewRegistry()
	srv := api.New(api.Config{}, slog.New(slog.NewJSONHandler(io.Discard, nil)), reg, reg)
	page := &lr.Page{Items: []lr.PageItem{{StreamerID: 1, StreamID: 2, Score: 0.5, Channels: []string{"mf"}}}}
	srv.RegisterRecall(fixedPage{page})
	h := srv.Handler()
	const body = `{"user_id": 42, "k": 10}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/recall", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
