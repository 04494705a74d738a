// Package handlers holds the HTTP endpoint families. Each parses input, calls one service method
// and writes JSON; failures go to c.Error and the error middleware writes them.
package handlers

import (
	"github.com/gin-gonic/gin"
	"go.uber.org/fx"
)

// Routes is implemented by each endpoint family.
type Routes interface {
	Register(r gin.IRouter)
}

// AsRoutes contributes an endpoint-family constructor to the "routes" group.
func AsRoutes(constructor any) any {
	return fx.Annotate(constructor, fx.As(new(Routes)), fx.ResultTags(`group:"routes"`))
}

type mountParams struct {
	fx.In
	Engine *gin.Engine
	Routes []Routes `group:"routes"`
}

// mount registers every endpoint family on the engine; group order is random, routes don't overlap.
// Paths are matched exactly: Gin's default answers "/api/sandboxes/" with a 301 and an HTML body
// written before any middleware runs (no request id, no security headers), and a redirected POST
// becomes a GET in many clients. Without it such paths reach NoRoute: a JSON 404 that says why.
func mount(p mountParams) {
	p.Engine.RedirectTrailingSlash = false
	p.Engine.RedirectFixedPath = false
	for _, routes := range p.Routes {
		routes.Register(p.Engine)
	}
}
