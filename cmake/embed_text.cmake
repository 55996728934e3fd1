# Embeds a file in a C++ source at build time: cmake -DINPUT=doc.json -DOUTPUT=doc.cpp -DSYMBOL=ns::fn
#   -DHEADER=path/of/the/declaring/header.hpp -P embed_text.cmake
# Writes `std::string_view fn() noexcept` in namespace ns returning the file's bytes. The bytes are emitted as a
# numeric array, so any content embeds unchanged (no escaping, no encoding or literal-length concerns). Only rewrites
# OUTPUT when its content changes.
foreach(v INPUT OUTPUT SYMBOL HEADER)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "embed_text.cmake: -D${v}=... is required")
  endif()
endforeach()
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX MATCH "^(.*)::([^:]+)$" _ "${SYMBOL}")
set(ns "${CMAKE_MATCH_1}")
set(fn "${CMAKE_MATCH_2}")
get_filename_component(input_name "${INPUT}" NAME)
set(out "// Generated at build time by cmake/embed_text.cmake from ${input_name}.
#include <${HEADER}>

namespace ${ns} {

namespace {
constexpr unsigned char document[${size} + 1] = {
    ${bytes}0x00};
}  // namespace

std::string_view ${fn}() noexcept { return {reinterpret_cast<const char*>(document), ${size}}; }

}  // namespace ${ns}
")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
  if(old STREQUAL out)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${out}")
