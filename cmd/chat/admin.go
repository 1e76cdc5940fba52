package main

import (
	"fmt"
	"slices"

	"github.com/sockstream/sockstream/server"
	"golang.org/x/crypto/bcrypt"
)

// adminUIOrigin is the hosted Socket.IO Admin UI's origin.
const adminUIOrigin = "https://admin.socket.io"

// watchWithAdminUI sets cfg up so that the Socket.IO Admin UI can watch
// the chat, from the one flag -admin-password: the admin namespace with
// the user "admin" (or -admin-username) and that password, and the hosted
// UI's origin allowed with credentials, as the UI connects with them. An
// explicit CORS list with "*" is left alone (the UI must then use
// WebSocket only, in its advanced options).
func watchWithAdminUI(cfg *server.Config, password string) error {
	if password == "" {
		return nil
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("invalid option admin-password: %w", err)
	}
	if cfg.Admin.Username == "" {
		cfg.Admin.Username = "admin"
	}
	cfg.Admin.PasswordHash = string(hash)
	if !slices.Contains(cfg.CORSOrigins, "*") && !slices.Contains(cfg.CORSOrigins, adminUIOrigin) {
		cfg.CORSOrigins = append(cfg.CORSOrigins, adminUIOrigin)
		cfg.CORSCredentials = true
	}
	return nil
}
