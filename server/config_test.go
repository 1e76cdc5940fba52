package server_test

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/server"
)

// TestConfigDefaults: the zero Config is valid, and RegisterFlags shows the
// documented defaults.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	if err := (server.Config{}).Validate(); err != nil {
		t.Fatalf("Config{}.Validate() = %v", err)
	}
	var c server.Config
	c.RegisterFlags(flag.NewFlagSet("t", flag.ContinueOnError))
	want := server.Config{
		Addr:                 server.DefaultAddr,
		Path:                 server.DefaultPath,
		PingInterval:         25 * time.Second,
		PingTimeout:          20 * time.Second,
		ConnectTimeout:       45 * time.Second,
		UpgradeTimeout:       10 * time.Second,
		MaxPayload:           1_000_000,
		MaxBufferedBytes:     server.DefaultMaxBufferedBytes,
		WriteTimeout:         server.DefaultWriteTimeout,
		MaxAttachments:       server.DefaultMaxAttachments,
		MaxPendingEventBytes: server.DefaultMaxPendingEventBytes,
		IdleTimeout:          server.DefaultIdleTimeout,
		ReadTimeout:          server.DefaultReadTimeout,
		MaxHeaderBytes:       server.DefaultMaxHeaderBytes,
		Transports:           []server.Transport{server.Polling, server.WebSocket},
		// The flags' defaults.
		HTTPCompressionThreshold: server.DefaultHTTPCompressionThreshold,
		ShutdownTimeout:          10 * time.Second,
		Recovery:                 server.RecoveryConfig{MaxDisconnection: 2 * time.Minute},
		Redis:                    defaultRedis(),
		Admin:                    server.AdminConfig{Namespace: server.DefaultAdminNamespace, Mode: server.AdminDevelopment},

		PerMessageDeflateThreshold: server.DefaultPerMessageDeflateThreshold,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	srv, err := server.New(server.Config{Logger: quiet()})
	if err != nil {
		t.Fatalf("New(Config{}) = %v", err)
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown of a server never served: %v", err)
	}
}

// TestConfigValidate: each bad value is a *ConfigError naming its option,
// also from New.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		option string
		cfg    server.Config
	}{
		{"addr", server.Config{Addr: "3000"}},
		{"addr", server.Config{Addr: ":99999"}},
		{"addr", server.Config{Addr: ":no port"}},
		{"path", server.Config{Path: "socket.io"}},
		{"path", server.Config{Path: "/io?x=1"}},
		{"cors-origins", server.Config{CORSOrigins: []string{"example.com"}}},
		{"cors-origins", server.Config{CORSOrigins: []string{"https://example.com/page"}}},
		{"cors-origins", server.Config{CORSOrigins: []string{"https://example.com?x=1"}}},
		{"ping-interval", server.Config{PingInterval: -time.Second}},
		{"ping-interval", server.Config{PingInterval: time.Microsecond}},
		{"ping-timeout", server.Config{PingTimeout: -time.Second}},
		{"connect-timeout", server.Config{ConnectTimeout: -1}},
		{"upgrade-timeout", server.Config{UpgradeTimeout: -1}},
		{"shutdown-timeout", server.Config{ShutdownTimeout: -1}},
		{"recovery-max-disconnection", server.Config{Recovery: server.RecoveryConfig{MaxDisconnection: -time.Minute}}},
		{"max-payload", server.Config{MaxPayload: -1}},
		{"transports", server.Config{Transports: []server.Transport{"quic"}}},
		{"transports", server.Config{Transports: []server.Transport{server.Polling, server.Polling}}},
		{"redis", server.Config{Redis: server.RedisConfig{URL: "http://localhost:6379"}}},
		{"redis", server.Config{Redis: server.RedisConfig{URL: "redis://u:secret@localhost:6379/x"}}},
		{"redis", server.Config{Redis: server.RedisConfig{URL: "redis://"}}},
		{"redis", server.Config{Redis: server.RedisConfig{URL: "redis://u:secret@host:6379/%zz"}}},
		{"redis-stream-count", server.Config{Redis: server.RedisConfig{StreamCount: -1}}},
		{"redis-stream-count", server.Config{Redis: server.RedisConfig{StreamCount: 2000}}},
		{"redis-max-len", server.Config{Redis: server.RedisConfig{MaxLen: -5}}},
		{"redis-heartbeat-interval", server.Config{Redis: server.RedisConfig{HeartbeatInterval: -time.Second}}},
		{"redis-heartbeat-timeout", server.Config{Redis: server.RedisConfig{HeartbeatInterval: 10 * time.Second, HeartbeatTimeout: 5 * time.Second}}},
		{"redis-request-timeout", server.Config{Redis: server.RedisConfig{RequestTimeout: -1}}},
		{"cors-origins", server.Config{CORSOrigins: []string{"nul"}}},
		{"cors-credentials", server.Config{CORSCredentials: true}},
		{"cors-credentials", server.Config{CORSOrigins: []string{"*"}, CORSCredentials: true}},
		{"cors-credentials", server.Config{CORSOrigins: []string{"https://a.example", "*"}, CORSCredentials: true}},
		{"idle-timeout", server.Config{IdleTimeout: -time.Second}},
		{"read-timeout", server.Config{ReadTimeout: -time.Second}},
		{"read-timeout", server.Config{ReadTimeout: time.Microsecond}},
		{"max-header-bytes", server.Config{MaxHeaderBytes: -1}},
		{"max-connections", server.Config{MaxConnections: -1}},
		{"max-attachment-bytes", server.Config{MaxAttachmentBytes: -1}},
		{"metrics-addr", server.Config{MetricsAddr: "9100"}},
		{"metrics-addr", server.Config{MetricsAddr: ":99999"}},
	} {
		err := tc.cfg.Validate()
		var ce *server.ConfigError
		if !errors.As(err, &ce) || ce.Option != tc.option {
			t.Errorf("Validate(%+v) = %v, want a *ConfigError for %s", tc.cfg, err, tc.option)
			continue
		}
		if !errors.Is(err, server.ErrInvalidConfig) {
			t.Errorf("%v does not match ErrInvalidConfig", err)
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tc.option) {
			t.Errorf("error %q is not one line naming %s", msg, tc.option)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q shows the Redis password", err)
		}
		tc.cfg.Logger = quiet()
		if _, err := server.New(tc.cfg); !errors.As(err, &ce) || ce.Option != tc.option {
			t.Errorf("New(%+v) = %v, want a *ConfigError for %s", tc.cfg, err, tc.option)
		}
	}
	for _, ok := range []server.Config{
		{Addr: "127.0.0.1:0"},
		{Addr: ":http"},
		{Addr: "[::1]:8080"},
		{CORSOrigins: []string{"*"}},
		{CORSOrigins: []string{"https://example.com", "http://localhost:8080/"}},
		{CORSOrigins: []string{"https://example.com"}, CORSCredentials: true},
		{CORSOrigins: []string{"null"}},
		{MetricsAddr: "127.0.0.1:9100"},
		{MaxConnections: 1, MaxHeaderBytes: 1, MaxAttachmentBytes: 1, ReadTimeout: time.Millisecond, IdleTimeout: time.Millisecond},
		{Transports: []server.Transport{server.WebSocket}},
		{PingInterval: time.Millisecond},
		{Redis: server.RedisConfig{URL: "redis://:pw@127.0.0.1:6390/2"}},
		{Redis: server.RedisConfig{URL: "rediss://cache.example:6380"}},
		{Redis: server.RedisConfig{URL: "redis://h1:7000?addr=h2:7001&addr=h3:7002"}},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", ok, err)
		}
	}
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// TestLoadEnv: every option is read from its SOCKSTREAM_ variable; a bad
// value is one line naming the variable, and changes nothing.
func TestLoadEnv(t *testing.T) {
	t.Parallel()
	var c server.Config
	err := c.LoadEnv(env(map[string]string{
		"SOCKSTREAM_ADDR":                       ":4000",
		"SOCKSTREAM_PATH":                       "/io/",
		"SOCKSTREAM_CORS_ORIGINS":               "https://a.example, https://b.example",
		"SOCKSTREAM_PING_INTERVAL":              "1s",
		"SOCKSTREAM_PING_TIMEOUT":               "2s",
		"SOCKSTREAM_CONNECT_TIMEOUT":            "3s",
		"SOCKSTREAM_UPGRADE_TIMEOUT":            "4s",
		"SOCKSTREAM_MAX_PAYLOAD":                "5000",
		"SOCKSTREAM_TRANSPORTS":                 "websocket",
		"SOCKSTREAM_DISABLE_UPGRADES":           "true",
		"SOCKSTREAM_RECOVERY":                   "true",
		"SOCKSTREAM_RECOVERY_MAX_DISCONNECTION": "30s",
		"SOCKSTREAM_RECOVERY_SKIP_MIDDLEWARES":  "1",
		"SOCKSTREAM_SHUTDOWN_TIMEOUT":           "6s",
		"SOCKSTREAM_REDIS_URL":                  "redis://127.0.0.1:6390/0",
		"SOCKSTREAM_REDIS_STREAM_NAME":          "app",
		"SOCKSTREAM_REDIS_STREAM_COUNT":         "4",
		"SOCKSTREAM_REDIS_MAX_LEN":              "500",
		"SOCKSTREAM_REDIS_CHANNEL_PREFIX":       "app-ch",
		"SOCKSTREAM_REDIS_SHARDED_PUBSUB":       "true",
		"SOCKSTREAM_REDIS_HEARTBEAT_INTERVAL":   "1s",
		"SOCKSTREAM_REDIS_HEARTBEAT_TIMEOUT":    "3s",
		"SOCKSTREAM_REDIS_REQUEST_TIMEOUT":      "2s",
		"SOCKSTREAM_CORS_CREDENTIALS":           "true",
		"SOCKSTREAM_MAX_ATTACHMENT_BYTES":       "4000",
		"SOCKSTREAM_IDLE_TIMEOUT":               "7s",
		"SOCKSTREAM_READ_TIMEOUT":               "8s",
		"SOCKSTREAM_MAX_HEADER_BYTES":           "9000",
		"SOCKSTREAM_MAX_CONNECTIONS":            "50",
		"SOCKSTREAM_METRICS_ADDR":               "127.0.0.1:9100",
		"SOCKSTREAM_COOKIE":                     "sticky",
		"SOCKSTREAM_DISABLE_HTTP_COMPRESSION":   "true",
		"SOCKSTREAM_HTTP_COMPRESSION_THRESHOLD": "2048",
		"SOCKSTREAM_UNRELATED":                  "x",

		"SOCKSTREAM_PER_MESSAGE_DEFLATE":           "true",
		"SOCKSTREAM_PER_MESSAGE_DEFLATE_THRESHOLD": "512",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := server.Config{
		Addr:                     ":4000",
		Path:                     "/io/",
		CORSOrigins:              []string{"https://a.example", "https://b.example"},
		PingInterval:             time.Second,
		PingTimeout:              2 * time.Second,
		ConnectTimeout:           3 * time.Second,
		UpgradeTimeout:           4 * time.Second,
		MaxPayload:               5000,
		MaxBufferedBytes:         server.DefaultMaxBufferedBytes,
		WriteTimeout:             server.DefaultWriteTimeout,
		MaxAttachments:           server.DefaultMaxAttachments,
		CORSCredentials:          true,
		MaxAttachmentBytes:       4000,
		MaxPendingEventBytes:     server.DefaultMaxPendingEventBytes,
		IdleTimeout:              7 * time.Second,
		ReadTimeout:              8 * time.Second,
		MaxHeaderBytes:           9000,
		MaxConnections:           50,
		MetricsAddr:              "127.0.0.1:9100",
		Transports:               []server.Transport{server.WebSocket},
		DisableUpgrades:          true,
		Cookie:                   &server.CookieConfig{Name: "sticky"},
		DisableHTTPCompression:   true,
		HTTPCompressionThreshold: 2048,
		PerMessageDeflate:        true,
		Recovery:                 server.RecoveryConfig{Enabled: true, MaxDisconnection: 30 * time.Second, SkipMiddlewares: true},
		ShutdownTimeout:          6 * time.Second,
		Admin:                    server.AdminConfig{Namespace: server.DefaultAdminNamespace, Mode: server.AdminDevelopment},
		Redis: server.RedisConfig{
			URL:               "redis://127.0.0.1:6390/0",
			StreamName:        "app",
			StreamCount:       4,
			MaxLen:            500,
			ChannelPrefix:     "app-ch",
			ShardedPubSub:     true,
			HeartbeatInterval: time.Second,
			HeartbeatTimeout:  3 * time.Second,
			RequestTimeout:    2 * time.Second,
		},
		PerMessageDeflateThreshold: 512,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("LoadEnv:\n got %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after LoadEnv: %v", err)
	}

	for name, value := range map[string]string{
		"SOCKSTREAM_PING_INTERVAL":            "soon",
		"SOCKSTREAM_MAX_PAYLOAD":              "1MB",
		"SOCKSTREAM_RECOVERY":                 "maybe",
		"SOCKSTREAM_TRANSPORTS":               "websocket,carrier-pigeon",
		"SOCKSTREAM_REDIS_STREAM_COUNT":       "many",
		"SOCKSTREAM_REDIS_HEARTBEAT_INTERVAL": "5",
		"SOCKSTREAM_READ_TIMEOUT":             "30",
		"SOCKSTREAM_MAX_CONNECTIONS":          "lots",
		"SOCKSTREAM_CORS_CREDENTIALS":         "please",
	} {
		before := server.Config{Addr: ":1"}
		c := before
		err := c.LoadEnv(env(map[string]string{name: value, "SOCKSTREAM_PATH": "/changed/"}))
		var ce *server.ConfigError
		if !errors.As(err, &ce) || ce.Option != name {
			t.Errorf("%s=%s: %v, want a *ConfigError naming %s", name, value, err, name)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, value) {
			t.Errorf("%s=%s: error %q is not one line with the value", name, value, msg)
		}
		if !reflect.DeepEqual(c, before) {
			t.Errorf("%s=%s: config changed to %+v despite the error", name, value, c)
		}
	}
}

// TestFlags: flags override the environment, which overrides the defaults;
// a bad flag value is an error naming the flag.
func TestFlags(t *testing.T) {
	t.Parallel()
	var c server.Config
	if err := c.LoadEnv(env(map[string]string{"SOCKSTREAM_ADDR": ":4000", "SOCKSTREAM_PING_INTERVAL": "7s"})); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	err := fs.Parse([]string{
		"-addr", ":5000", "-transports", "polling", "-cors-origins", "*",
		"-max-payload", "10", "-recovery", "-disable-upgrades", "-upgrade-timeout", "1s",
		"-recovery-skip-middlewares", "-redis", "redis://localhost:6390", "-redis-stream-count", "2",
		"-idle-timeout", "3s", "-read-timeout", "4s", "-max-header-bytes", "5000", "-max-connections", "60",
		"-metrics-addr", ":9100", "-max-attachment-bytes", "700",
	})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case c.Addr != ":5000":
		t.Errorf("Addr = %q, want the flag's :5000", c.Addr)
	case c.PingInterval != 7*time.Second:
		t.Errorf("PingInterval = %v, want the environment's 7s", c.PingInterval)
	case c.PingTimeout != server.DefaultPingTimeout:
		t.Errorf("PingTimeout = %v, want the default", c.PingTimeout)
	case !reflect.DeepEqual(c.Transports, []server.Transport{server.Polling}):
		t.Errorf("Transports = %v", c.Transports)
	case !reflect.DeepEqual(c.CORSOrigins, []string{"*"}):
		t.Errorf("CORSOrigins = %v", c.CORSOrigins)
	case c.MaxPayload != 10 || !c.Recovery.Enabled || !c.DisableUpgrades || c.UpgradeTimeout != time.Second || !c.Recovery.SkipMiddlewares:
		t.Errorf("flags not applied: %+v", c)
	case c.Redis.URL != "redis://localhost:6390" || c.Redis.StreamCount != 2:
		t.Errorf("Redis = %+v", c.Redis)
	case c.IdleTimeout != 3*time.Second || c.ReadTimeout != 4*time.Second || c.MaxHeaderBytes != 5000 ||
		c.MaxConnections != 60 || c.MetricsAddr != ":9100" || c.MaxAttachmentBytes != 700:
		t.Errorf("limit flags not applied: %+v", c)
	}

	for _, args := range [][]string{
		{"-ping-interval", "soon"},
		{"-max-payload", "big"},
		{"-transports", "smoke-signals"},
		{"-redis-max-len", "long"},
		{"-idle-timeout", "idle"},
		{"-max-connections", "1e3"},
		{"-max-header-bytes", "64KiB"},
	} {
		var c server.Config
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.RegisterFlags(fs)
		err := fs.Parse(args)
		if err == nil || !strings.Contains(err.Error(), args[0]) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line naming %s", args, err, args[0])
		}
	}

	// A value that parses but is invalid is caught by Validate, which
	// names the option as its flag.
	c = server.Config{}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-ping-timeout", "-1s"}); err != nil {
		t.Fatal(err)
	}
	var ce *server.ConfigError
	if err := c.Validate(); !errors.As(err, &ce) || ce.Option != "ping-timeout" {
		t.Errorf("Validate after -ping-timeout -1s = %v", err)
	}
}

func TestEnvName(t *testing.T) {
	t.Parallel()
	for flagName, want := range map[string]string{
		"ping-interval":      "SOCKSTREAM_PING_INTERVAL",
		"addr":               "SOCKSTREAM_ADDR",
		"redis":              "SOCKSTREAM_REDIS_URL",
		"redis-stream-count": "SOCKSTREAM_REDIS_STREAM_COUNT",
	} {
		if got := server.EnvName(flagName); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

// defaultRedis is RedisConfig with the documented defaults.
func defaultRedis() server.RedisConfig {
	return server.RedisConfig{
		StreamName:        "socket.io",
		StreamCount:       1,
		MaxLen:            10000,
		ChannelPrefix:     "socket.io",
		HeartbeatInterval: 5 * time.Second,
		HeartbeatTimeout:  10 * time.Second,
		RequestTimeout:    5 * time.Second,
	}
}

// Parse: a bad flag is one error and nothing printed; -h prints the usage,
// the command's own flags included, and returns flag.ErrHelp.
func TestParse(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	var c server.Config
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(&out)
	fs.Int("history", 50, "the command's own flag")
	err := c.Parse(fs, []string{"-ping-interval", "soon"}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "ping-interval") || out.Len() != 0 {
		t.Errorf("bad value: %v, printed %q; want one error naming ping-interval and nothing printed", err, out.String())
	}

	c, out = server.Config{}, strings.Builder{}
	fs = flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(&out)
	fs.Int("history", 50, "the command's own flag")
	if err := c.Parse(fs, []string{"-h"}, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"usage of demo", "-history", "-ping-interval", "SOCKSTREAM_PING_INTERVAL"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}

	c = server.Config{}
	fs = flag.NewFlagSet("demo", flag.ContinueOnError)
	if err := c.Parse(fs, []string{"-addr", ":5000"}, env(map[string]string{"SOCKSTREAM_ADDR": ":4000", "SOCKSTREAM_PATH": "/io/"})); err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":5000" || c.Path != "/io/" {
		t.Errorf("Addr %q, Path %q; want the flag's :5000 and the environment's /io/", c.Addr, c.Path)
	}
}
