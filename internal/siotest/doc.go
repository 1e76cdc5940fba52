// Package siotest is the shared harness of the end-to-end tests that run
// sockstream's Socket.IO server (package server) with the cluster adapter
// against the official socket.io-client.
//
// It starts servers on loopback httptest listeners ([StartServer]), drives
// Node processes that print one JSON object per line ([StartProc]), among
// them testdata/siotest/clients.js, which runs socket.io-client instances
// ([StartClients]), and offers the waits with deadlines those tests need
// ([Eventually], [Recv]). Every wait fails the test at its deadline rather
// than hang, and everything started is stopped by t.Cleanup.
//
// Node and the packages of testdata/node_modules must be installed; a test
// that needs them fails, it is not skipped.
package siotest
