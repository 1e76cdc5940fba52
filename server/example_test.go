package server_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/sockstream/sockstream/server"
)

// A chat server: clients join a room and what one says reaches the others.
// Run serves until the context ends, then shuts down gracefully.
func Example() {
	srv, err := server.New(server.Config{Addr: ":3000"})
	if err != nil {
		log.Fatal(err)
	}
	srv.OnConnection(func(s *server.Socket) {
		s.Join("lobby")
		s.On("chat", func(e *server.Event) {
			var text string
			if err := e.Bind(0, &text); err != nil {
				e.Ack("error", err.Error())
				return
			}
			_ = s.To("lobby").Emit("chat", s.ID(), text)
			e.Ack("ok")
		})
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := srv.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// The handler of a server serves Socket.IO, /healthz, /readyz and /metrics;
// it can be mounted on any net/http server. Shutdown turns /readyz to 503
// so that a load balancer stops sending clients.
func ExampleServer_Handler() {
	srv, err := server.New(server.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	web := httptest.NewServer(srv.Handler())
	defer web.Close()

	show := func(path string) {
		resp, err := http.Get(web.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s %d %s", path, resp.StatusCode, body)
	}
	show("/healthz")
	show("/readyz")
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	show("/readyz")
	// Output:
	// /healthz 200 ok
	// /readyz 200 ok
	// /readyz 503 shutting down
}

// Validate, which New calls first, names the option that is wrong.
func ExampleConfig_Validate() {
	cfg := server.Config{PingInterval: 10 * time.Second, PingTimeout: -time.Second}
	err := cfg.Validate()
	fmt.Println(err)

	var ce *server.ConfigError
	if errors.As(err, &ce) {
		fmt.Println("option:", ce.Option)
	}
	fmt.Println(errors.Is(err, server.ErrInvalidConfig))
	// Output:
	// invalid config: ping-timeout: -1s is negative
	// option: ping-timeout
	// true
}

// A program reads its configuration from the environment, then from its
// flags, which win.
func ExampleConfig_Parse() {
	environment := map[string]string{
		"SOCKSTREAM_PING_INTERVAL": "10s",
		"SOCKSTREAM_ADDR":          ":4000",
		"SOCKSTREAM_REDIS_URL":     "redis://redis.internal:6379",
	}
	lookup := func(k string) (string, bool) { v, ok := environment[k]; return v, ok }

	var cfg server.Config
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	history := fs.Int("history", 50, "a flag of the program's own")
	if err := cfg.Parse(fs, []string{"-addr", ":5000", "-history", "10"}, lookup); err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Addr, cfg.PingInterval, cfg.PingTimeout, cfg.Redis.URL, *history)

	// A malformed value is one line naming the variable.
	err := cfg.LoadEnv(func(k string) (string, bool) {
		if k == "SOCKSTREAM_MAX_PAYLOAD" {
			return "1MB", true
		}
		return "", false
	})
	fmt.Println(err)
	// Output:
	// :5000 10s 20s redis://redis.internal:6379 10
	// invalid config: SOCKSTREAM_MAX_PAYLOAD: "1MB": parse error
}

// Clustering: servers given the same Redis deliver each other's
// broadcasts, room operations and server-side emits. New does not wait for
// Redis; /readyz answers 503 until Redis is reachable.
func ExampleRedisConfig() {
	cfg := server.Config{
		Redis: server.RedisConfig{
			URL:        "redis://localhost:6379/0",
			StreamName: "chat",
		},
	}
	if err := cfg.Validate(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Redis.Enabled())
	// Output: true
}

// A middleware rejects a connection: the client's connect_error carries
// the message and the data.
func ExampleNamespace_Use() {
	srv, err := server.New(server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	admin := srv.Of("/admin")
	admin.Use(func(s *server.Socket) error {
		if s.Handshake().Auth["token"] != "secret" {
			return &server.ConnectError{Message: "not authorized", Data: map[string]any{"code": 401}}
		}
		return nil
	})
	admin.OnConnection(func(s *server.Socket) {
		_ = s.Emit("welcome", "admin")
	})
}

// A dynamic namespace serves every name its function accepts, such as one
// namespace per workspace.
func ExampleServer_OfDynamic() {
	srv, err := server.New(server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	workspaces := srv.OfDynamic(func(name string, auth map[string]any) bool {
		return strings.HasPrefix(name, "/workspace-")
	})
	workspaces.OnConnection(func(s *server.Socket) {
		// s.Namespace() is the name the client asked for.
		_ = s.Emit("hello", s.Namespace())
	})
	// Reaches the clients of every workspace namespace.
	_ = workspaces.Emit("announcement", "maintenance at noon")
}

// A handler asks its client a question and waits for the answer; the
// context bounds the wait.
func ExampleSocket_EmitWithAck() {
	srv, err := server.New(server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	srv.OnConnection(func(s *server.Socket) {
		ctx, cancel := context.WithTimeout(s.Context(), 5*time.Second)
		defer cancel()
		answer, err := s.EmitWithAck(ctx, "name?")
		if errors.Is(err, server.ErrAckTimeout) {
			s.Disconnect(true)
			return
		}
		if err == nil && len(answer) > 0 {
			s.SetData(map[string]any{"name": answer[0]})
		}
	})
}

// Bind decodes an argument into a Go value, as encoding/json would.
func ExampleEvent_Bind() {
	e := &server.Event{Name: "move", Args: []any{map[string]any{"x": 3.0, "y": 4.0}, []byte{0xca, 0xfe}}}
	var pos struct{ X, Y int }
	if err := e.Bind(0, &pos); err != nil {
		log.Fatal(err)
	}
	var blob []byte
	if err := e.Bind(1, &blob); err != nil {
		log.Fatal(err)
	}
	fmt.Println(pos.X, pos.Y, blob)
	fmt.Println(e.Bind(2, &blob))
	// Output:
	// 3 4 [202 254]
	// event "move": no argument 2 (got 2)
}

// A broadcast with acknowledgements collects every client's answer; clients
// that stay silent past the deadline make it return ErrAckTimeout with the
// answers it got.
func ExampleBroadcast_EmitWithAck() {
	srv, err := server.New(server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	votes, err := srv.To("jury").EmitWithAck(ctx, "vote?")
	if errors.Is(err, server.ErrAckTimeout) {
		log.Printf("only %d votes in time", len(votes))
	}
}

// A server for clients that use socket.io-msgpack-parser (binary-heavy
// apps): every client of this server must use that parser, as with Node's
// `new Server({ parser: require("socket.io-msgpack-parser") })`. In the
// browser: io(url, { parser: require("socket.io-msgpack-parser") }).
func ExampleConfig_parser() {
	srv, err := server.New(server.Config{Parser: server.ParserMsgpack})
	if err != nil {
		log.Fatal(err)
	}
	srv.OnConnection(func(s *server.Socket) {
		s.On("upload", func(e *server.Event) {
			data, _ := e.Arg(0).([]byte) // binary arrives as []byte, as with JSON
			e.Ack(len(data))
		})
	})
	_ = srv.Run(context.Background())
}
