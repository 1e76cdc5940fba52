package servetest_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/sockstream/sockstream/internal/servetest"
	"github.com/sockstream/sockstream/server"
)

func TestServe(t *testing.T) {
	srv, err := server.New(server.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(servetest.Serve(t, srv) + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d %q", res.StatusCode, body)
	}
}
