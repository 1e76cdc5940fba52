package server

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// The values of AdminConfig.Mode.
const (
	// AdminDevelopment sends the Admin UI every socket, room and event as
	// it happens (the events feed), as Node's instrument() does unless
	// NODE_ENV says otherwise.
	AdminDevelopment = "development"
	// AdminProduction sends only the periodic server stats with their
	// aggregated counts: nothing per socket or per event.
	AdminProduction = "production"
)

// DefaultAdminNamespace is the default of AdminConfig.Namespace, the
// Admin UI's default too.
const DefaultAdminNamespace = "/admin"

// AdminConfig serves the namespace the Socket.IO Admin UI
// (@socket.io/admin-ui 0.5) connects to, as Node's instrument() does:
// server stats, sockets, rooms, the events feed, and the UI's actions
// (join, leave, disconnect, emit) carried out cluster-wide. Off by
// default; see docs/admin.md.
type AdminConfig struct {
	// Enabled serves the admin namespace. A non-empty Username enables it
	// too.
	Enabled bool
	// Username and PasswordHash are the credentials the UI must send
	// (basic authentication, as instrument()'s auth: {type: "basic"}).
	// PasswordHash is a bcrypt hash ($2a$, $2b$ or $2y$), such as
	// `htpasswd -nbBC 10 "" secret | cut -d: -f2` prints. Without a
	// Username, NoAuth must be set.
	Username     string
	PasswordHash string
	// NoAuth serves the admin namespace to anyone who can reach the
	// server, as instrument()'s auth: false: for a local demo only.
	NoAuth bool
	// ReadOnly offers no action to the UI and refuses those sent anyway.
	ReadOnly bool
	// Namespace is the admin namespace's name. Default "/admin".
	Namespace string
	// ServerID names this node in the UI. Default hostname#pid, which
	// tells apart several nodes on one host.
	ServerID string
	// Mode is AdminDevelopment (default, as Node without NODE_ENV) or
	// AdminProduction. In development every socket, room change and
	// event of every namespace goes to the admin namespace, across the
	// cluster: a cost to weigh on a busy server.
	Mode string
}

// enabled reports whether the admin namespace is served.
func (a AdminConfig) enabled() bool { return a.Enabled || a.Username != "" }

func (a AdminConfig) withDefaults() AdminConfig {
	if a.Namespace == "" {
		a.Namespace = DefaultAdminNamespace
	} else if a.Namespace[0] != '/' {
		a.Namespace = "/" + a.Namespace
	}
	if a.ServerID == "" {
		host, _ := os.Hostname()
		a.ServerID = fmt.Sprintf("%s#%d", host, os.Getpid())
	}
	if a.Mode == "" {
		a.Mode = AdminDevelopment
	}
	return a
}

// validate checks a (with its defaults) when it is enabled; the errors are
// those of Node's instrument() where it has one.
func (a AdminConfig) validate() error {
	if !a.enabled() {
		return nil
	}
	bad := func(opt, format string, args ...any) error {
		return &ConfigError{Option: opt, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case a.Username == "" && !a.NoAuth:
		return bad("admin-username", "the admin namespace needs credentials (admin-username and admin-password-hash), or admin-no-auth to serve it without")
	case a.Username != "" && a.NoAuth:
		return bad("admin-no-auth", "set with admin-username: choose one")
	case a.Username != "":
		if _, err := bcrypt.Cost([]byte(a.PasswordHash)); err != nil {
			return bad("admin-password-hash", "the password must be a valid bcrypt hash (%v)", err)
		}
	}
	if a.Mode != AdminDevelopment && a.Mode != AdminProduction {
		return bad("admin-mode", "%q is not one of development, production", a.Mode)
	}
	if a.Namespace == "/" {
		return bad("admin-namespace", "the main namespace \"/\" cannot be the admin namespace: its clients would need the admin's credentials")
	}
	if strings.ContainsAny(a.Namespace, "?#") {
		return bad("admin-namespace", "%q must not contain a query or fragment", a.Namespace)
	}
	return nil
}

func (a *AdminConfig) registerFlags(fs *flag.FlagSet, d AdminConfig) {
	fs.BoolVar(&a.Enabled, "admin", a.Enabled, "serve the Socket.IO Admin UI's namespace; needs admin-username or admin-no-auth (env SOCKSTREAM_ADMIN)")
	fs.StringVar(&a.Username, "admin-username", a.Username, "Admin UI user name; enables the admin namespace (env SOCKSTREAM_ADMIN_USERNAME)")
	fs.StringVar(&a.PasswordHash, "admin-password-hash", a.PasswordHash, "bcrypt hash of the Admin UI password (env SOCKSTREAM_ADMIN_PASSWORD_HASH)")
	fs.BoolVar(&a.NoAuth, "admin-no-auth", a.NoAuth, "serve the admin namespace without authentication: local demos only (env SOCKSTREAM_ADMIN_NO_AUTH)")
	fs.BoolVar(&a.ReadOnly, "admin-read-only", a.ReadOnly, "refuse the Admin UI's actions (join, leave, disconnect, emit) (env SOCKSTREAM_ADMIN_READ_ONLY)")
	fs.StringVar(&a.Namespace, "admin-namespace", d.Namespace, "name of the admin namespace (env SOCKSTREAM_ADMIN_NAMESPACE)")
	fs.StringVar(&a.ServerID, "admin-server-id", a.ServerID, "this node's name in the Admin UI; empty: hostname#pid (env SOCKSTREAM_ADMIN_SERVER_ID)")
	fs.StringVar(&a.Mode, "admin-mode", d.Mode, "development (every socket, room and event) or production (aggregated stats only) (env SOCKSTREAM_ADMIN_MODE)")
}
