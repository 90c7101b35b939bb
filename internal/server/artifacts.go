package server

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"

	"github.com/drover-dev/drover/internal/api"
)

// Artifact repository routes: the server publishes the TUF repository in
// Config.ArtifactsDir (built and signed offline with `drover artifact`)
// read-only, to agents and users. It holds no key: agents check every
// byte against signatures the server cannot make, so these routes only
// need to keep the files to authenticated callers and inside the
// directory.
const (
	pathArtifactMetadata = "GET /v1/artifacts/metadata/{file}"
	pathArtifactTargets  = "GET /v1/artifacts/targets/{file}"
)

// artifactRoutes mounts the repository routes; without ArtifactsDir they
// answer 404 not_found.
func (s *Server) artifactRoutes(mux *http.ServeMux) {
	s.handle(mux, pathArtifactMetadata, s.serveArtifact("metadata", "application/json", "no-cache"))
	// Targets are published under their hash (consistent snapshots):
	// a name's bytes never change.
	s.handle(mux, pathArtifactTargets, s.serveArtifact("targets", "application/octet-stream", "max-age=86400, immutable"))
}

func (s *Server) serveArtifact(sub, contentType, cacheControl string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.authenticateLimited(w, r); err != nil {
			s.writeError(w, r, err)
			return
		}
		name := r.PathValue("file")
		notFound := &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "no artifact file " + sub + "/" + name}
		if s.cfg.ArtifactsDir == "" {
			notFound.msg = "this server publishes no artifact repository (artifactsDir is not set)"
			s.writeError(w, r, notFound)
			return
		}
		if name == "" || strings.HasPrefix(name, ".") || strings.ContainsAny(name, `/\`) {
			s.writeError(w, r, notFound)
			return
		}
		// os.OpenInRoot refuses names and symlinks leading out of the
		// repository directory.
		f, err := os.OpenInRoot(s.cfg.ArtifactsDir, path.Join(sub, name))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("artifact repository file refused", "file", sub+"/"+name, "err", err)
			}
			s.writeError(w, r, notFound)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !fi.Mode().IsRegular() {
			s.writeError(w, r, notFound)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", cacheControl)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "", fi.ModTime(), f)
	}
}
