#pragma once
// The OpenAPI 3 document of the REST API (docs/openapi.json), embedded in the binary so that an installed turretd
// serves it without the source tree. openapi_data.cpp is generated from docs/openapi.json by
// services/http/embed_openapi.py (run it after editing the document; tests/integration/test_http.py fails when the
// served document differs from docs/openapi.json).
#include <string_view>

namespace turret::http_frontend {

std::string_view openapi_json() noexcept;

}  // namespace turret::http_frontend
