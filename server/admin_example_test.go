package server_test

import (
	"log"

	"github.com/sockstream/sockstream/server"
)

// The Socket.IO Admin UI watches the server (and, with Redis, the whole
// cluster) once Config.Admin has credentials: connect the UI to the
// server's URL with user "admin" and the password of the bcrypt hash.
func ExampleAdminConfig() {
	srv, err := server.New(server.Config{
		Admin: server.AdminConfig{
			Username:     "admin",
			PasswordHash: "$2a$10$smnMrduZKvD8c1neML9.7uS3c4BxmNog1B1ol64v/Xa6aq8Jwy14m", // bcrypt of "changeit"
			// ReadOnly: true, Mode: server.AdminProduction, ...
		},
		// The UI connects with credentials (cookies, for sticky sessions).
		CORSOrigins:     []string{"https://admin.socket.io"},
		CORSCredentials: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = srv // srv.Run(ctx)
}
