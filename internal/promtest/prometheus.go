package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/redistest"
)

// Binary is the Prometheus server started by Start.
var Binary = "prometheus"

// Server is a running Prometheus.
type Server struct {
	// URL is its base address, http://127.0.0.1:port.
	URL string
	dir string
}

// Target is one scrape target: host:port and the job label it gets.
type Target struct {
	Job  string
	Addr string
}

// Start runs Prometheus scraping targets every interval, and stops it when
// the test ends.
func Start(t testing.TB, interval time.Duration, targets ...Target) *Server {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		t.Fatalf("promtest: %s not found: install Debian's prometheus package (`make test` does, as root)", Binary)
	}
	dir := t.TempDir()
	jobs := map[string][]string{}
	var order []string
	for _, tg := range targets {
		if _, ok := jobs[tg.Job]; !ok {
			order = append(order, tg.Job)
		}
		jobs[tg.Job] = append(jobs[tg.Job], tg.Addr)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\nscrape_configs:\n", interval, interval, interval)
	for _, job := range order {
		fmt.Fprintf(&cfg, "  - job_name: %q\n    static_configs:\n      - targets: [", job)
		for i, a := range jobs[job] {
			if i > 0 {
				cfg.WriteString(", ")
			}
			fmt.Fprintf(&cfg, "%q", a)
		}
		cfg.WriteString("]\n")
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	var lastErr error
	for range 5 { // the free port may be taken before Prometheus binds it
		// One allocator for every test process's ports: it never hands
		// out a port twice in a run, nor Redis's.
		port, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir}
		logPath := filepath.Join(dir, fmt.Sprintf("prometheus-%d.log", port))
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin,
			"--config.file="+cfgPath,
			"--storage.tsdb.path="+filepath.Join(dir, "data"),
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
			"--log.level=warn",
		)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("promtest: start %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); logf.Close() }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		if err := s.waitReady(30*time.Second, exited); err != nil {
			stop()
			log, _ := os.ReadFile(logPath)
			lastErr = fmt.Errorf("%w\n%s", err, log)
			continue
		}
		t.Cleanup(stop)
		return s
	}
	t.Fatalf("promtest: prometheus did not start: %v", lastErr)
	return nil
}

func (s *Server) waitReady(timeout time.Duration, exited <-chan error) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("prometheus exited: %v", err)
		default:
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("prometheus not ready in time")
}

// Sample is one series of an instant query's result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant PromQL query.
func (s *Server) Query(ctx context.Context, promql string) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/query?query="+url.QueryEscape(promql), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("promtest: query %q: %w", promql, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("promtest: query %q: %w", promql, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("promtest: query %q: %s", promql, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("promtest: query %q: result type %s, want vector", promql, body.Data.ResultType)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		str, _ := r.Value[1].(string)
		var v float64
		if _, err := fmt.Sscan(str, &v); err != nil {
			return nil, fmt.Errorf("promtest: query %q: value %q: %w", promql, str, err)
		}
		out = append(out, Sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// Eventually runs promql until cond accepts its result or timeout passes,
// and returns the last result.
func (s *Server) Eventually(t testing.TB, timeout time.Duration, promql string, cond func([]Sample) bool) []Sample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []Sample
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		last, lastErr = s.Query(ctx, promql)
		cancel()
		if lastErr == nil && cond(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("promtest: %q: condition not met in %s: result %v, err %v", promql, timeout, last, lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// CheckMetrics runs `promtool check metrics` over an exposition in the
// Prometheus text format and returns its complaints, one per line; none
// means the metrics follow the conventions promtool knows.
func CheckMetrics(t testing.TB, exposition []byte) []string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtest: promtool not found: install Debian's prometheus package (`make test` does, as root)")
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			problems = append(problems, l)
		}
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("promtest: promtool: %v", err)
	}
	if err != nil && len(problems) == 0 {
		problems = append(problems, "promtool failed without saying why: "+err.Error())
	}
	return problems
}
