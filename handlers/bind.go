package handlers

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/insien/orchestrator/apierror"
)

// bindOptionalJSON is bindJSON for bodies that may be left out entirely (all fields optional).
func bindOptionalJSON(c *gin.Context, dst any) error {
	if c.Request.ContentLength == 0 {
		return nil
	}
	return bindJSON(c, dst)
}

// bindJSON decodes a JSON object body strictly: unknown fields and trailing data are errors, and
// each failure names what is wrong.
func bindJSON(c *gin.Context, dst any) error {
	if ct := c.ContentType(); ct != "" && ct != "application/json" {
		return apierror.New(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
	}
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("trailing data after the JSON object")
	}
	var tooLarge *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLarge):
		return err
	case errors.Is(err, io.EOF):
		return apierror.BadRequest("invalid_json", "the request body is empty; send a JSON object")
	case errors.As(err, &typeErr):
		return apierror.Invalid(typeErr.Field, "%s must be a %s", typeErr.Field, typeErr.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apierror.Invalid(field, "unknown field %q", field)
	}
	return apierror.BadRequest("invalid_json", "the request body is not valid JSON: %v", err)
}
