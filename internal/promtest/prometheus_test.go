package promtest

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveMetrics serves a fixed exposition on a free port.
func serveMetrics(t *testing.T, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestScrapeAndQuery(t *testing.T) {
	a := serveMetrics(t, "# HELP demo_things_total Things.\n# TYPE demo_things_total counter\ndemo_things_total 7\n")
	b := serveMetrics(t, "# HELP demo_things_total Things.\n# TYPE demo_things_total counter\ndemo_things_total 5\n")
	p := Start(t, 200*time.Millisecond, Target{Job: "demo", Addr: a}, Target{Job: "demo", Addr: b})
	got := p.Eventually(t, 20*time.Second, `sum(demo_things_total{job="demo"})`, func(s []Sample) bool {
		return len(s) == 1 && s[0].Value == 12
	})
	if got[0].Value != 12 {
		t.Fatalf("sum = %v", got)
	}
	up := p.Eventually(t, 10*time.Second, `up{job="demo"} == 1`, func(s []Sample) bool { return len(s) == 2 })
	if len(up) != 2 {
		t.Fatalf("up = %v", up)
	}
	if _, err := p.Query(t.Context(), `sum(`); err == nil {
		t.Error("a bad query must fail")
	}
}

func TestCheckMetrics(t *testing.T) {
	good := "# HELP demo_things_total Things.\n# TYPE demo_things_total counter\ndemo_things_total 7\n"
	if p := CheckMetrics(t, []byte(good)); len(p) != 0 {
		t.Errorf("good exposition: %v", p)
	}
	bad := "# HELP demo_things Things.\n# TYPE demo_things counter\ndemo_things 7\n"
	p := CheckMetrics(t, []byte(bad))
	if len(p) == 0 || !strings.Contains(strings.Join(p, "\n"), "_total") {
		t.Errorf("a counter without _total must be reported: %v", p)
	}
}
