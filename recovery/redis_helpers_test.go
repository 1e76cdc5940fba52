package recovery

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
)

// redisClient starts a real redis-server and returns a client to it.
func redisClient(t *testing.T) (*redistest.Server, rueidis.Client) {
	t.Helper()
	srv := redistest.StartStandalone(t)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatalf("rueidis: %v", err)
	}
	t.Cleanup(c.Close)
	return srv, c
}

// xadd publishes msg to stream key as the cluster transport does and
// returns the entry id.
func xadd(t testing.TB, c rueidis.Client, key string, msg *adapter.Message) string {
	t.Helper()
	e, err := cluster.Codec{}.EncodeEntry(msg)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := c.Do(ctx, c.B().Xadd().Key(key).Id("*").FieldValue().FieldValue("uid", e.UID).
		FieldValue("nsp", e.Nsp).FieldValue("type", strconv.Itoa(int(e.Type))).FieldValue("data", e.Data).Build()).ToString()
	if err != nil {
		t.Fatalf("XADD: %v", err)
	}
	return id
}

// broadcast is a BROADCAST message of nsp with packet data args.
func broadcast(nsp string, rooms, except []string, volatile bool, args ...any) *adapter.Message {
	if rooms == nil {
		rooms = []string{}
	}
	if except == nil {
		except = []string{}
	}
	return &adapter.Message{UID: "0123456789abcdef", Nsp: nsp, Type: adapter.Broadcast, Data: &adapter.BroadcastData{
		Packet: adapter.Packet{Type: 2, Data: args},
		Opts:   adapter.Options{Rooms: rooms, Except: except, Flags: adapter.Flags{Volatile: volatile}},
	}}
}

func commandCalls(t *testing.T, srv *redistest.Server, cmd string) int {
	t.Helper()
	v, err := srv.Do("INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(v.(string), "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
