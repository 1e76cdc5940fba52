package main

import (
	"slices"
	"testing"

	"github.com/sockstream/sockstream/server"
	"golang.org/x/crypto/bcrypt"
)

// TestWatchWithAdminUI: -admin-password alone serves the admin namespace
// with that password and lets the hosted Admin UI in.
func TestWatchWithAdminUI(t *testing.T) {
	var cfg server.Config
	if err := watchWithAdminUI(&cfg, ""); err != nil || cfg.Admin != (server.AdminConfig{}) || cfg.CORSOrigins != nil {
		t.Fatalf("no password: %v, %+v", err, cfg)
	}
	if err := watchWithAdminUI(&cfg, "pw"); err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Username != "admin" || bcrypt.CompareHashAndPassword([]byte(cfg.Admin.PasswordHash), []byte("pw")) != nil {
		t.Errorf("admin config: %+v", cfg.Admin)
	}
	if !slices.Equal(cfg.CORSOrigins, []string{adminUIOrigin}) || !cfg.CORSCredentials {
		t.Errorf("CORS: %v credentials=%v", cfg.CORSOrigins, cfg.CORSCredentials)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
	open := server.Config{CORSOrigins: []string{"*"}}
	if err := watchWithAdminUI(&open, "pw"); err != nil || !slices.Equal(open.CORSOrigins, []string{"*"}) || open.CORSCredentials {
		t.Errorf("with *: %v %+v", err, open)
	}
}
