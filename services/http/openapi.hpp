#pragma once
// The OpenAPI 3 document of the REST API (docs/openapi.json), embedded in the binary so that an installed turretd
// serves it without the source tree. The definition is generated at build time from docs/openapi.json
// (cmake/embed_text.cmake, services/CMakeLists.txt): editing the document and rebuilding is all it takes;
// tests/integration/test_http.py checks that the served document is docs/openapi.json byte for byte.
#include <string_view>

namespace turret::http_frontend {

std::string_view openapi_json() noexcept;

}  // namespace turret::http_frontend
