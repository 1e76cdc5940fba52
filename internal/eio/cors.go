package eio

import "errors"

// CORS, as Node's cors package answers for socket.io's cors option: a list
// of origins reflects the allowed Origin (with Vary: Origin); origin "*" is
// a literal Access-Control-Allow-Origin: *, which browsers never combine
// with credentials; Access-Control-Allow-Credentials only when asked for.

// errAnyOriginCredentials refuses AllowAnyOrigin with AllowCredentials.
var errAnyOriginCredentials = errors.New("eio: AllowCredentials with AllowAnyOrigin: browsers refuse credentials with Access-Control-Allow-Origin: *; list the origins instead")

// corsDefaults checks the CORS options and makes AllowAnyOrigin allow every
// origin.
func (o *Options) corsDefaults() error {
	if !o.AllowAnyOrigin {
		return nil
	}
	if o.AllowCredentials {
		return errAnyOriginCredentials
	}
	o.AllowOrigin = anyOrigin
	return nil
}

func anyOrigin(string) bool { return true }

// allowOriginHeader is the Access-Control-Allow-Origin value of the answer
// to an allowed origin: "*" with AllowAnyOrigin, else the origin itself.
func (o *Options) allowOriginHeader(origin string) string {
	if o.AllowAnyOrigin {
		return "*"
	}
	return origin
}
