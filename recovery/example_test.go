package recovery_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/recovery"
)

// A single node: sessions and packets in memory.
func ExampleRestore() {
	ctx := context.Background()
	store := recovery.NewMemoryStore(recovery.MemoryStoreOptions{})
	defer store.Close()
	log := recovery.NewMemoryLog(recovery.MemoryLogOptions{})

	offset := log.Append("/", []any{"chat", "hello"}, recovery.PacketOptions{Rooms: []string{"lobby"}})
	// The socket disconnects abnormally: its session is persisted.
	_ = store.Persist(ctx, recovery.Session{SID: "sid1", PID: "AbCdEfGhIjKlMnOpQrSt", Rooms: []string{"sid1", "lobby"}, Nsp: "/"}, time.Minute)
	// While it is away:
	log.Append("/", []any{"chat", "missed"}, recovery.PacketOptions{Rooms: []string{"lobby"}})
	log.Append("/", []any{"chat", "not for it"}, recovery.PacketOptions{Rooms: []string{"kitchen"}})

	// Its client comes back with the pid and the last offset it got.
	res, err := recovery.Restore(ctx, store, log, "AbCdEfGhIjKlMnOpQrSt", offset, "/")
	if err != nil {
		fmt.Println(recovery.ReasonOf(err))
		return
	}
	for _, p := range res.MissedPackets {
		fmt.Println(p[0], p[1])
	}
	// A pid is good for one restore only.
	_, err = recovery.Restore(ctx, store, log, "AbCdEfGhIjKlMnOpQrSt", offset, "/")
	fmt.Println(recovery.ReasonOf(err))
	// Output:
	// chat missed
	// expired
}

// A cluster over Redis: the sessions live in Redis under Node's keys, the
// missed packets are read from the transport's stream.
func ExampleSessions() {
	tr, err := cluster.New(cluster.Options{URL: "redis://127.0.0.1:6379"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()
	metrics, _ := recovery.NewMetrics(nil)
	builder, err := adapter.New(tr, adapter.Config{Sessions: &recovery.Sessions{
		Store:   tr.SessionStore(),
		Log:     tr.StreamLog(cluster.StreamLogOptions{Metrics: metrics}),
		Metrics: metrics,
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = builder // socket.ServerOptions.SetAdapter(builder), with ConnectionStateRecovery set
}
