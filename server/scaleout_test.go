package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// scaleStreams is the StreamCount of the scale-out tests: one stream per
// master of the Redis Cluster.
const scaleStreams = 3

// streamNamespaces returns one namespace name per stream of count
// (namespaces hash to streams), in stream order.
func streamNamespaces(t testing.TB, count int) []string {
	t.Helper()
	names := make([]string, count)
	found := 0
	for i := 0; found < count && i < 10000; i++ {
		nsp := "/n" + strconv.Itoa(i)
		if cluster.HashCode(nsp) < 0 {
			continue // Node writes those to streams no node reads
		}
		k := int(cluster.HashCode(nsp)) % count
		if names[k] == "" {
			names[k] = nsp
			found++
		}
	}
	if found < count {
		t.Fatalf("no namespace for every one of %d streams", count)
	}
	return names
}

// scaleConfig is the clustered config of the scale-out tests: a Redis
// Cluster, its namespaces spread over scaleStreams streams.
func scaleConfig(url string) server.Config {
	rc := fastCluster(url)
	rc.StreamCount = scaleStreams
	return server.Config{Redis: rc}
}

// TestClusterScaleOut: four Go nodes on a three-master Redis Cluster with
// StreamCount 3. A numbered sequence broadcast in a namespace of each
// stream, each from another node, reaches the official clients of every
// node in that namespace: nothing lost, duplicated or reordered; the three
// streams all carry entries.
func TestClusterScaleOut(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, 3)
	nsps := streamNamespaces(t, scaleStreams)
	const nodes, total = 4, 50
	var servers []*siotest.Server
	for i := range nodes {
		srv := siotest.StartServer(t, "n"+strconv.Itoa(i), scaleConfig(rc.URL()))
		for _, nsp := range nsps {
			srv.Srv.Of(nsp).OnConnection(func(s *server.Socket) { s.Join("r") })
		}
		servers = append(servers, srv)
	}
	c := siotest.StartClients(t)
	ids := map[string][]string{}
	for k, nsp := range nsps {
		for i, srv := range servers {
			id := fmt.Sprintf("s%d-n%d", k, i)
			c.Connect(t, id, srv.URL+nsp, nil, nil)
			ids[nsp] = append(ids[nsp], id)
		}
	}
	// Every node's adapter of every namespace answers: all subscribed.
	for _, nsp := range nsps {
		siotest.Eventually(t, 30*time.Second, "every node in "+nsp, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := servers[0].Srv.Of(nsp).In("r").FetchSockets(ctx)
			return err == nil && len(got) == nodes
		})
	}
	var wg sync.WaitGroup
	for k, nsp := range nsps {
		from := servers[k%nodes].Srv.Of(nsp)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range total {
				if err := from.To("r").Emit("seq", n); err != nil {
					t.Errorf("%s: emit %d: %v", nsp, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, nsp := range nsps {
		siotest.CheckSequence(t, c, ids[nsp], "seq", total)
	}
	masters := map[string]bool{}
	for k, nsp := range nsps {
		key := cluster.StreamKey(cluster.DefaultStreamName, scaleStreams, nsp)
		if key != cluster.DefaultStreamName+"-"+strconv.Itoa(k) {
			t.Errorf("%s is on stream %s, want -%d", nsp, key, k)
		}
		n, err := rc.Do("XLEN", key)
		if err != nil {
			t.Fatalf("XLEN %s: %v", key, err)
		}
		if l, _ := n.(int64); l < total {
			t.Errorf("stream %s holds %v entries, want at least %d", key, n, total)
		}
		masters[rc.NodeForKey(key).Addr()] = true
	}
	t.Logf("the %d streams are on %d of the 3 masters", scaleStreams, len(masters))
}

// scaleClient is a raw WebSocket Socket.IO client of one namespace that
// counts the "m" events it receives.
type scaleClient struct {
	c      *websocket.Conn
	prefix []byte // 42/nsp,["m"
}

func dialScaleClient(base, nsp string) (*scaleClient, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	steps := []struct{ send, want string }{{"", "0"}, {"40" + nsp + ",", "40" + nsp + ","}, {"42" + nsp + `,1["ready"]`, "43" + nsp + ",1"}}
	for _, st := range steps {
		if st.send != "" {
			if err := c.WriteMessage(websocket.TextMessage, []byte(st.send)); err != nil {
				c.Close()
				return nil, err
			}
		}
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("waiting for %s: %w", st.want, err)
			}
			if strings.HasPrefix(string(msg), st.want) {
				break
			}
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return &scaleClient{c: c, prefix: []byte("42" + nsp + `,["m"`)}, nil
}

// read counts the client's "m" events into received until its connection
// closes.
func (sc *scaleClient) read(received *atomic.Int64) {
	for {
		_, msg, err := sc.c.ReadMessage()
		if err != nil {
			return
		}
		switch {
		case bytes.HasPrefix(msg, sc.prefix):
			received.Add(1)
		case bytes.Equal(msg, []byte("2")):
			_ = sc.c.WriteMessage(websocket.TextMessage, []byte("3"))
		}
	}
}

// BenchmarkClusterScaleOut: 1, 2 and 4 Go nodes on one three-master Redis
// Cluster with StreamCount 3; 100 WebSocket clients in a room of a
// namespace of each stream, spread over the nodes; every node broadcasts a
// 100-byte event into every namespace, with at most 16 broadcasts per
// namespace on their way. Reports deliveries/s (the servers, Redis and the clients
// share the machine's cores: the figures compare node counts on one
// machine, they are not a cluster's capacity).
func BenchmarkClusterScaleOut(b *testing.B) {
	rc := redistest.StartCluster(b, 3)
	nsps := streamNamespaces(b, scaleStreams)
	for _, nodes := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			benchScaleOut(b, rc.URL(), nsps, nodes)
		})
	}
}

func benchScaleOut(b *testing.B, url string, nsps []string, nodes int) {
	const perNsp, window = 100, 16
	var servers []*testServer
	for range nodes {
		servers = append(servers, startServer(b, scaleConfig(url), func(srv *server.Server) {
			for _, nsp := range nsps {
				n := srv.Of(nsp)
				n.OnConnection(func(s *server.Socket) {
					s.Join("r")
					s.On("ready", func(e *server.Event) { e.Ack() })
				})
			}
		}))
	}
	for _, ts := range servers {
		eventually(b, "/readyz 200", func() bool { return readyz(b, ts) == http.StatusOK })
	}
	var received atomic.Int64
	var clients []*scaleClient
	var readers sync.WaitGroup
	b.Cleanup(func() {
		for _, sc := range clients {
			_ = sc.c.Close()
		}
		readers.Wait()
	})
	for k, nsp := range nsps {
		for i := range perNsp {
			sc, err := dialScaleClient(servers[(k+i)%nodes].URL, nsp)
			if err != nil {
				b.Fatalf("client %d of %s: %v", i, nsp, err)
			}
			clients = append(clients, sc)
			readers.Add(1)
			go func() { defer readers.Done(); sc.read(&received) }()
		}
	}
	for _, nsp := range nsps {
		eventually(b, "every node in "+nsp, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := servers[0].Of(nsp).In("r").FetchSockets(ctx)
			return err == nil && len(got) == perNsp
		})
	}
	payload := strings.Repeat("x", 100)
	total := int64(b.N) * int64(len(nsps)) // broadcasts
	var issued atomic.Int64
	b.ResetTimer()
	// Four senders per namespace, each on another node in turn, keep at
	// most window broadcasts per namespace on their way.
	var wg sync.WaitGroup
	for k, nsp := range nsps {
		var left atomic.Int64
		left.Store(int64(b.N))
		for j := range 4 {
			from := servers[(k+j)%nodes].Of(nsp)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for left.Add(-1) >= 0 {
					n := issued.Add(1)
					deadline := time.Now().Add(20 * time.Second)
					for (n-int64(window*len(nsps)))*perNsp > received.Load() {
						if time.Now().After(deadline) {
							b.Errorf("%d deliveries after 20 s, want %d", received.Load(), (n-int64(window*len(nsps)))*perNsp)
							return
						}
						time.Sleep(50 * time.Microsecond)
					}
					if err := from.To("r").Emit("m", payload); err != nil {
						b.Errorf("emit: %v", err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	want := total * perNsp
	deadline := time.Now().Add(20 * time.Second)
	for received.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d deliveries after 20 s", received.Load(), want)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	if got := received.Load(); got != want {
		b.Errorf("%d deliveries, want %d", got, want)
	}
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
}
