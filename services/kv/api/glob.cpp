#include <turret/kv/glob.hpp>

#include <cctype>

namespace turret::kv {
namespace {

// Direct port of stringmatchlen_impl (Redis 7.0.15). Redis reads the pattern's NUL terminator in a few places; `at`
// returns 0 past the end to reproduce that on a string_view.
struct matcher {
  const char* p;
  long plen;
  const char* s;
  long slen;
};

inline int at(const char* p, long len, long i) { return i < len ? static_cast<unsigned char>(p[i]) : 0; }
inline int sc(char c) { return static_cast<int>(static_cast<signed char>(c)); }
inline int low(int c) { return std::tolower(c); }

// Redis 7.0 gives up (no match) past 1000 nested '*': a pattern of 1001 stars never matches, as in redis-server.
// Also bounds the recursion depth (stack use) of any pattern.
constexpr int max_nesting = 1000;

int match_impl(const char* pattern, long patternLen, const char* string, long stringLen, bool nocase,
               int* skipLongerMatches, int depth) {
  if (depth > max_nesting) return 0;  // protection against abusive patterns, at Redis's depth
  while (patternLen > 0 && stringLen > 0) {
    switch (pattern[0]) {
      case '*':
        while (patternLen > 1 && pattern[1] == '*') {
          pattern++;
          patternLen--;
        }
        if (patternLen == 1) return 1;
        while (stringLen) {
          if (match_impl(pattern + 1, patternLen - 1, string, stringLen, nocase, skipLongerMatches, depth + 1))
            return 1;
          if (*skipLongerMatches) return 0;
          string++;
          stringLen--;
        }
        *skipLongerMatches = 1;
        return 0;
      case '?':
        string++;
        stringLen--;
        break;
      case '[': {
        int nott, match;
        pattern++;
        patternLen--;
        nott = at(pattern, patternLen, 0) == '^';
        if (nott) {
          pattern++;
          patternLen--;
        }
        match = 0;
        while (1) {
          if (at(pattern, patternLen, 0) == '\\' && patternLen >= 2) {
            pattern++;
            patternLen--;
            if (pattern[0] == string[0]) match = 1;
          } else if (at(pattern, patternLen, 0) == ']') {
            break;
          } else if (patternLen == 0) {
            pattern--;
            patternLen++;
            break;
          } else if (patternLen >= 3 && pattern[1] == '-') {
            int start = sc(pattern[0]);
            int end = sc(pattern[2]);
            int c = sc(string[0]);
            if (start > end) {
              int t = start;
              start = end;
              end = t;
            }
            if (nocase) {
              start = low(start);
              end = low(end);
              c = low(c);
            }
            pattern += 2;
            patternLen -= 2;
            if (c >= start && c <= end) match = 1;
          } else {
            if (!nocase) {
              if (pattern[0] == string[0]) match = 1;
            } else {
              if (low(sc(pattern[0])) == low(sc(string[0]))) match = 1;
            }
          }
          pattern++;
          patternLen--;
        }
        if (nott) match = !match;
        if (!match) return 0;
        string++;
        stringLen--;
        break;
      }
      case '\\':
        if (patternLen >= 2) {
          pattern++;
          patternLen--;
        }
        [[fallthrough]];
      default:
        if (!nocase) {
          if (pattern[0] != string[0]) return 0;
        } else {
          if (low(sc(pattern[0])) != low(sc(string[0]))) return 0;
        }
        string++;
        stringLen--;
        break;
    }
    pattern++;
    patternLen--;
    if (stringLen == 0) {
      while (patternLen > 0 && *pattern == '*') {
        pattern++;
        patternLen--;
      }
      break;
    }
  }
  if (patternLen == 0 && stringLen == 0) return 1;
  return 0;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view str, bool nocase) noexcept {
  int skip = 0;
  return match_impl(pattern.data(), static_cast<long>(pattern.size()), str.data(), static_cast<long>(str.size()),
                    nocase, &skip, 0) != 0;
}

}  // namespace turret::kv
