// Package api is the HTTP edge of liverecall (echo): request validation,
// handlers for recall, debug neighbours, admin and health routes, and the one
// place where coded errors become status codes.
package api
