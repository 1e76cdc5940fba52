// Command hello is the README's example: a Socket.IO server with one event.
package main

import (
	"context"
	"log"
	"os"
	"os/signal"

	"github.com/sockstream/sockstream/server"
)

func main() {
	srv, err := server.New(server.Config{Addr: ":3000", CORSOrigins: []string{"*"}})
	if err != nil {
		log.Fatal(err)
	}
	srv.OnConnection(func(s *server.Socket) {
		s.Join("lobby")
		s.On("chat", func(e *server.Event) {
			_ = srv.To("lobby").Emit("chat", s.ID(), e.Arg(0)) // to everyone in the room
			e.Ack("delivered")                                 // answer the sender's ack
		})
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := srv.Run(ctx); err != nil { // graceful shutdown on Ctrl-C
		log.Fatal(err)
	}
}
