package main

import (
	"context"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
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

// TestChatAdminFlag: the chat run with -admin-password alone is watched by
// an Admin UI client (the official client speaking the UI's protocol): it
// logs in as admin with that password and sees a chat user connect.
func TestChatAdminFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", addr, "-admin-password", "x"}) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not return after its context ended")
		}
	}()
	base := "http://" + addr
	siotest.Eventually(t, 20*time.Second, "the chat listens", func() bool {
		res, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	cl := siotest.StartClients(t)
	cl.Connect(t, "adm", base+"/admin", nil, map[string]any{"auth": map[string]any{"username": "admin", "password": "x"}})
	cl.Wait(t, "the admin gets its config", 20*time.Second, siotest.IsEventFor("adm", "config"))
	sid := cl.Connect(t, "u", base+"/", nil, nil).Sid
	cl.Wait(t, "the admin sees the user connect", 20*time.Second, func(ev siotest.Event) bool {
		if ev.ID != "adm" || ev.Type != "event" || ev.Event != "socket_connected" || len(ev.Args) == 0 {
			return false
		}
		m, _ := ev.Args[0].(map[string]any)
		return m["id"] == sid
	})
}
