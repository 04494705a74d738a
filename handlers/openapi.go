package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"

	orchestrator "github.com/insien/orchestrator"
)

// OpenAPI serves the API description.
type OpenAPI struct{}

// NewOpenAPI builds the spec handler.
func NewOpenAPI() *OpenAPI { return &OpenAPI{} }

// Register mounts GET /openapi.yaml.
func (OpenAPI) Register(r gin.IRouter) {
	r.GET("/openapi.yaml", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/yaml", orchestrator.OpenAPI)
	})
}
