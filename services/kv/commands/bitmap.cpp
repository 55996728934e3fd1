// The bitmap command family (Redis 7.0's bitops.c): SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD,
// BITFIELD_RO. Replies, error texts and validation order follow redis-server 7.0.15 (bitmap_test.cpp).
#include <turret/kv/command_table.hpp>
#include <services/kv/commands/string_support.hpp>

#include <cstring>
#include <string>
#include <vector>

namespace turret::kv {
namespace {

using namespace detail;

constexpr std::string_view err_bit_offset = "ERR bit offset is not an integer or out of range";

// getBitOffsetFromArgument: "#N" (BITFIELD only) multiplies by the field width.
bool bit_offset(command_ctx& c, std::string_view arg, std::uint64_t& out, bool hash, int bits) {
  bool usehash = !arg.empty() && arg[0] == '#' && hash && bits > 0;
  long long off;
  if (!parse_ll(arg.substr(usehash ? 1 : 0), off)) {
    fail(c, err_bit_offset);
    return false;
  }
  if (usehash) off = static_cast<long long>(static_cast<unsigned long long>(off) * static_cast<unsigned>(bits));
  if (off < 0 || (off >> 3) >= proto_max_bulk_len(c)) {
    fail(c, err_bit_offset);
    return false;
  }
  out = static_cast<std::uint64_t>(off);
  return true;
}

// lookupStringForBitCommand: the key's value grown (zero padded) so that bit `maxbit` exists. nullptr after a
// WRONGTYPE reply. `grown` tells whether the key was created or lengthened.
entry* string_for_bits(command_ctx& c, std::uint64_t maxbit, bool& grown) {
  const std::size_t need = static_cast<std::size_t>(maxbit >> 3) + 1;
  std::string_view key = c.args[1];
  keyspace& db = c.db();
  entry* e = lookup_write(c, key);
  if (wrong_type(c, e)) return nullptr;
  grown = false;
  if (!e) {
    e = db.set(key, std::string_view());
    db.resize_value(e, need);
    grown = true;
  } else if (keyspace::value_of(e).size() < need) {
    db.resize_value(e, need);
    grown = true;
  }
  return e;
}

void cmd_setbit(command_ctx& c) {
  std::uint64_t off;
  if (!bit_offset(c, c.args[2], off, false, 0)) return;
  long long on;
  if (!parse_ll(c.args[3], on) || (on & ~1LL)) return fail(c, "ERR bit is not an integer or out of range");
  bool grown;
  entry* e = string_for_bits(c, off, grown);
  if (!e) return;
  const std::size_t byte = off >> 3;
  const int bit = 7 - static_cast<int>(off & 7);
  unsigned char bv = static_cast<unsigned char>(keyspace::value_of(e)[byte]);
  const int old = (bv >> bit) & 1;
  if (grown || old != on) {
    bv = static_cast<unsigned char>((bv & ~(1u << bit)) | (static_cast<unsigned>(on) << bit));
    c.db().mutable_value(e, byte, 1)[0] = static_cast<char>(bv);
    modified(c, c.args[1], "setbit");
  }
  c.out.integer(old);
}

void cmd_getbit(command_ctx& c) {
  std::uint64_t off;
  if (!bit_offset(c, c.args[2], off, false, 0)) return;
  entry* e = lookup_read(c, c.args[1]);
  if (!e) return c.out.integer(0);
  if (wrong_type(c, e)) return;
  std::string_view v = keyspace::value_of(e);
  const std::size_t byte = off >> 3;
  int bitval = 0;
  if (byte < v.size()) bitval = (static_cast<unsigned char>(v[byte]) >> (7 - (off & 7))) & 1;
  c.out.integer(bitval);
}

long long popcount(const unsigned char* p, std::size_t n) {
  long long bits = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    bits += __builtin_popcountll(w);
  }
  for (; i < n; ++i) bits += __builtin_popcount(p[i]);
  return bits;
}

// redisBitpos: position of the first bit set to `bit` in p[0..count); when looking for 0 and every bit is 1,
// the position just after the range; -1 when looking for 1 and there is none.
long long bitpos(const unsigned char* p, std::size_t count, int bit) {
  const unsigned char skip = bit ? 0x00 : 0xff;
  std::size_t i = 0;
  while (i < count && p[i] == skip) ++i;
  if (i == count) return bit ? -1 : static_cast<long long>(count) * 8;
  unsigned char b = p[i];
  for (int k = 7; k >= 0; --k)
    if (((b >> k) & 1) == bit) return static_cast<long long>(i) * 8 + (7 - k);
  return -1;  // unreachable
}

bool parse_bit_byte(command_ctx& c, std::string_view arg, bool& isbit) {
  if (iequals(arg, "bit"))
    isbit = true;
  else if (iequals(arg, "byte"))
    isbit = false;
  else {
    fail(c, err_syntax);
    return false;
  }
  return true;
}

void cmd_bitcount(command_ctx& c) {
  entry* e = lookup_read(c, c.args[1]);
  if (!e) return c.out.integer(0);
  if (wrong_type(c, e)) return;
  std::string_view s = keyspace::value_of(e);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  long long start, end;
  bool isbit = false;
  unsigned char first_mask = 0, last_mask = 0;
  const std::size_t argc = c.args.size();
  if (argc == 4 || argc == 5) {
    long long totlen = static_cast<long long>(s.size());
    if (!parse_ll(c.args[2], start) || !parse_ll(c.args[3], end)) return fail(c, err_not_int);
    if (start < 0 && end < 0 && start > end) return c.out.integer(0);
    if (argc == 5 && !parse_bit_byte(c, c.args[4], isbit)) return;
    if (isbit) totlen <<= 3;
    if (start < 0) start = totlen + start;
    if (end < 0) end = totlen + end;
    if (start < 0) start = 0;
    if (end < 0) end = 0;
    if (end >= totlen) end = totlen - 1;
    if (isbit && start <= end) {
      first_mask = static_cast<unsigned char>(~((1u << (8 - (start & 7))) - 1) & 0xff);
      last_mask = static_cast<unsigned char>((1u << (7 - (end & 7))) - 1);
      start >>= 3;
      end >>= 3;
    }
  } else if (argc == 2) {
    start = 0;
    end = static_cast<long long>(s.size()) - 1;
  } else {
    return fail(c, err_syntax);
  }
  if (start > end) return c.out.integer(0);
  long long count = popcount(p + start, static_cast<std::size_t>(end - start + 1));
  if (first_mask || last_mask) {
    unsigned char fl[2] = {0, 0};
    if (first_mask) fl[0] = p[start] & first_mask;
    if (last_mask) fl[1] = p[end] & last_mask;
    count -= popcount(fl, 2);
  }
  c.out.integer(count);
}

void cmd_bitpos(command_ctx& c) {
  long long bit;
  if (!parse_ll(c.args[2], bit)) return fail(c, err_not_int);
  if (bit != 0 && bit != 1) return fail(c, "ERR The bit argument must be 1 or 0.");
  entry* e = lookup_read(c, c.args[1]);
  if (!e) return c.out.integer(bit ? -1 : 0);
  if (wrong_type(c, e)) return;
  std::string_view s = keyspace::value_of(e);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t argc = c.args.size();
  long long start, end;
  bool isbit = false, end_given = false;
  unsigned char first_mask = 0, last_mask = 0;
  if (argc == 4 || argc == 5 || argc == 6) {
    long long totlen = static_cast<long long>(s.size());
    if (!parse_ll(c.args[3], start)) return fail(c, err_not_int);
    if (argc == 6 && !parse_bit_byte(c, c.args[5], isbit)) return;
    if (argc >= 5) {
      if (!parse_ll(c.args[4], end)) return fail(c, err_not_int);
      end_given = true;
    } else {
      end = isbit ? (totlen << 3) + 7 : totlen - 1;
    }
    if (isbit) totlen <<= 3;
    if (start < 0) start = totlen + start;
    if (end < 0) end = totlen + end;
    if (start < 0) start = 0;
    if (end < 0) end = 0;
    if (end >= totlen) end = totlen - 1;
    if (isbit && start <= end) {
      first_mask = static_cast<unsigned char>(~((1u << (8 - (start & 7))) - 1) & 0xff);
      last_mask = static_cast<unsigned char>((1u << (7 - (end & 7))) - 1);
      start >>= 3;
      end >>= 3;
    }
  } else if (argc == 3) {
    start = 0;
    end = static_cast<long long>(s.size()) - 1;
  } else {
    return fail(c, err_syntax);
  }
  if (start > end) return c.out.integer(-1);

  long long bytes = end - start + 1;
  long long pos = -1;
  unsigned char tmp;
  const int b = static_cast<int>(bit);
  do {
    if (first_mask) {
      tmp = b ? (p[start] & ~first_mask) : (p[start] | first_mask);
      if (last_mask && bytes == 1) tmp = b ? (tmp & ~last_mask) : (tmp | last_mask);
      pos = bitpos(&tmp, 1, b);
      if (bytes == 1 || (pos != -1 && pos != 8)) break;
      ++start;
      --bytes;
    }
    long long cur = bytes - (last_mask ? 1 : 0);
    if (cur > 0) {
      pos = bitpos(p + start, static_cast<std::size_t>(cur), b);
      if (bytes == cur || (pos != -1 && pos != cur << 3)) break;
      start += cur;
      bytes -= cur;
    }
    tmp = b ? (p[end] & ~last_mask) : (p[end] | last_mask);
    pos = bitpos(&tmp, 1, b);
  } while (false);
  if (end_given && b == 0 && pos == bytes << 3) return c.out.integer(-1);
  if (pos != -1) pos += start << 3;
  c.out.integer(pos);
}

void cmd_bitop(command_ctx& c) {
  std::string_view opname = c.args[1], target = c.args[2];
  enum { op_and, op_or, op_xor, op_not } op;
  if (iequals(opname, "and"))
    op = op_and;
  else if (iequals(opname, "or"))
    op = op_or;
  else if (iequals(opname, "xor"))
    op = op_xor;
  else if (iequals(opname, "not"))
    op = op_not;
  else
    return fail(c, err_syntax);
  if (op == op_not && c.args.size() != 4) return fail(c, "ERR BITOP NOT must be called with a single source key.");
  const std::size_t numkeys = c.args.size() - 3;
  std::vector<std::string_view> src(numkeys);
  std::size_t maxlen = 0;
  for (std::size_t j = 0; j < numkeys; ++j) {
    entry* e = lookup_read(c, c.args[j + 3]);
    if (!e) continue;
    if (wrong_type(c, e)) return;
    src[j] = keyspace::value_of(e);  // lookups only expire other keys; these views stay valid until we write
    maxlen = std::max(maxlen, src[j].size());
  }
  // Lazy expiry by a later lookup may free an earlier source: re-resolve the views now that all lookups are done.
  for (std::size_t j = 0; j < numkeys; ++j) {
    entry* e = c.db().find_raw(c.args[j + 3]);
    src[j] = e ? keyspace::value_of(e) : std::string_view();
  }
  std::string res;
  if (maxlen) {
    res.resize(maxlen);
    for (std::size_t j = 0; j < maxlen; ++j) {
      unsigned char out = j < src[0].size() ? static_cast<unsigned char>(src[0][j]) : 0;
      if (op == op_not) out = static_cast<unsigned char>(~out);
      for (std::size_t i = 1; i < numkeys; ++i) {
        unsigned char byte = j < src[i].size() ? static_cast<unsigned char>(src[i][j]) : 0;
        if (op == op_and)
          out &= byte;
        else if (op == op_or)
          out |= byte;
        else
          out ^= byte;
      }
      res[j] = static_cast<char>(out);
    }
    keyspace& db = c.db();
    db.find(target, c.now);
    db.set(target, res);
    modified(c, target, "set");
  } else if (c.db().erase(target)) {
    modified(c, target, "del", notify_generic);
  }
  c.out.integer(static_cast<long long>(maxlen));
}

// ---- BITFIELD --------------------------------------------------------------------------------------------------

enum class overflow : std::uint8_t { wrap, sat, fail };
enum class bf_op : std::uint8_t { get, set, incrby };

struct bitfield_op {
  std::uint64_t offset;
  std::int64_t i64;
  bf_op op;
  overflow ow;
  int bits;
  bool sign;
};

std::uint64_t get_unsigned_bits(const unsigned char* p, std::uint64_t offset, int bits) {
  std::uint64_t value = 0;
  for (int j = 0; j < bits; ++j, ++offset) {
    std::uint64_t byte = offset >> 3;
    int bit = 7 - static_cast<int>(offset & 7);
    value = (value << 1) | ((p[byte] >> bit) & 1u);
  }
  return value;
}
std::int64_t get_signed_bits(const unsigned char* p, std::uint64_t offset, int bits) {
  std::uint64_t u = get_unsigned_bits(p, offset, bits);
  if (bits < 64 && (u & (std::uint64_t{1} << (bits - 1)))) u |= ~std::uint64_t{0} << bits;
  return static_cast<std::int64_t>(u);
}
void set_unsigned_bits(unsigned char* p, std::uint64_t offset, int bits, std::uint64_t value) {
  for (int j = 0; j < bits; ++j, ++offset) {
    unsigned bitval = (value & (std::uint64_t{1} << (bits - 1 - j))) != 0;
    std::uint64_t byte = offset >> 3;
    int bit = 7 - static_cast<int>(offset & 7);
    p[byte] = static_cast<unsigned char>((p[byte] & ~(1u << bit)) | (bitval << bit));
  }
}

// checkUnsignedBitfieldOverflow
int unsigned_overflow(std::uint64_t value, std::int64_t incr, int bits, overflow ow, std::uint64_t* limit) {
  const std::uint64_t max = bits == 64 ? UINT64_MAX : (std::uint64_t{1} << bits) - 1;
  const std::int64_t maxincr = static_cast<std::int64_t>(max - value);
  const std::int64_t minincr = static_cast<std::int64_t>(0 - value);
  auto wrap = [&] {
    std::uint64_t mask = bits == 64 ? 0 : ~std::uint64_t{0} << bits;
    *limit = (value + static_cast<std::uint64_t>(incr)) & ~mask;
  };
  if (value > max || (incr > 0 && incr > maxincr)) {
    if (limit) {
      if (ow == overflow::wrap)
        wrap();
      else if (ow == overflow::sat)
        *limit = max;
    }
    return 1;
  } else if (incr < 0 && incr < minincr) {
    if (limit) {
      if (ow == overflow::wrap) {
        wrap();
        return 1;
      } else if (ow == overflow::sat) {
        *limit = 0;
      }
    }
    return -1;
  }
  return 0;
}

// checkSignedBitfieldOverflow
int signed_overflow(std::int64_t value, std::int64_t incr, int bits, overflow ow, std::int64_t* limit) {
  const std::int64_t max = bits == 64 ? INT64_MAX : (std::int64_t{1} << (bits - 1)) - 1;
  const std::int64_t min = -max - 1;
  const std::int64_t maxincr = static_cast<std::int64_t>(static_cast<std::uint64_t>(max) - static_cast<std::uint64_t>(value));
  const std::int64_t minincr = static_cast<std::int64_t>(static_cast<std::uint64_t>(min) - static_cast<std::uint64_t>(value));
  auto wrap = [&] {
    std::uint64_t msb = std::uint64_t{1} << (bits - 1);
    std::uint64_t r = static_cast<std::uint64_t>(value) + static_cast<std::uint64_t>(incr);
    if (bits < 64) {
      std::uint64_t mask = ~std::uint64_t{0} << bits;
      r = (r & msb) ? (r | mask) : (r & ~mask);
    }
    *limit = static_cast<std::int64_t>(r);
  };
  if (value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr)) {
    if (limit) {
      if (ow == overflow::wrap)
        wrap();
      else if (ow == overflow::sat)
        *limit = max;
    }
    return 1;
  } else if (value < min || (bits != 64 && incr < minincr) || (value < 0 && incr < 0 && incr < minincr)) {
    if (limit) {
      if (ow == overflow::wrap) {
        wrap();
        return 1;
      } else if (ow == overflow::sat) {
        *limit = min;
      }
    }
    return -1;
  }
  return 0;
}

void bitfield_generic(command_ctx& c, bool readonly_cmd) {
  std::vector<bitfield_op> ops;
  overflow ow = overflow::wrap;
  bool readonly = true;
  std::uint64_t highest_write_offset = 0;
  const auto& a = c.args;
  for (std::size_t j = 2; j < a.size(); ++j) {
    const std::size_t remargs = a.size() - j - 1;
    std::string_view sub = a[j];
    bf_op op;
    if (iequals(sub, "get") && remargs >= 2) {
      op = bf_op::get;
    } else if (iequals(sub, "set") && remargs >= 3) {
      op = bf_op::set;
    } else if (iequals(sub, "incrby") && remargs >= 3) {
      op = bf_op::incrby;
    } else if (iequals(sub, "overflow") && remargs >= 1) {
      std::string_view t = a[++j];
      if (iequals(t, "wrap"))
        ow = overflow::wrap;
      else if (iequals(t, "sat"))
        ow = overflow::sat;
      else if (iequals(t, "fail"))
        ow = overflow::fail;
      else
        return fail(c, "ERR Invalid OVERFLOW type specified");
      continue;
    } else {
      return fail(c, err_syntax);
    }
    // getBitfieldTypeFromArgument
    std::string_view type = a[j + 1];
    bool sign;
    long long bits = 0;
    if (!type.empty() && type[0] == 'i')
      sign = true;
    else if (!type.empty() && type[0] == 'u')
      sign = false;
    else
      return fail(c,
                  "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.");
    std::string_view width = type.substr(1);
    width = width.substr(0, width.find('\0'));  // Redis parses strlen(p+1) bytes: the width ends at a NUL
    if (!parse_ll(width, bits) || bits < 1 || (sign && bits > 64) || (!sign && bits > 63))
      return fail(c,
                  "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.");
    std::uint64_t offset;
    if (!bit_offset(c, a[j + 2], offset, true, static_cast<int>(bits))) return;
    long long i64 = 0;
    if (op != bf_op::get) {
      readonly = false;
      highest_write_offset = std::max<std::uint64_t>(highest_write_offset, offset + bits - 1);
      if (!parse_ll(a[j + 3], i64)) return fail(c, err_not_int);
    }
    ops.push_back({offset, i64, op, ow, static_cast<int>(bits), sign});
    j += op == bf_op::get ? 2 : 3;
  }

  keyspace& db = c.db();
  entry* e = nullptr;
  bool grown = false;
  if (readonly) {
    e = lookup_read(c, a[1]);
    if (wrong_type(c, e)) return;
  } else {
    if (readonly_cmd) return fail(c, "ERR BITFIELD_RO only supports the GET subcommand");
    e = string_for_bits(c, highest_write_offset, grown);
    if (!e) return;
  }

  c.out.array(ops.size());
  std::size_t changes = 0;
  for (const bitfield_op& op : ops) {
    if (op.op != bf_op::get) {
      // The bytes this operation may rewrite (the value reaches them: string_for_bits grew it), as a pointer to
      // the value's start so that bit offsets apply unchanged.
      const std::size_t first = static_cast<std::size_t>(op.offset >> 3);
      const std::size_t last = static_cast<std::size_t>((op.offset + op.bits - 1) >> 3);
      auto* p = reinterpret_cast<unsigned char*>(db.mutable_value(e, first, last - first + 1).data()) - first;
      if (op.sign) {
        std::int64_t oldval = get_signed_bits(p, op.offset, op.bits), newval, wrapped = 0, retval;
        int of;
        if (op.op == bf_op::incrby) {
          of = signed_overflow(oldval, op.i64, op.bits, op.ow, &wrapped);
          newval = of ? wrapped : static_cast<std::int64_t>(static_cast<std::uint64_t>(oldval) + static_cast<std::uint64_t>(op.i64));
          retval = newval;
        } else {
          newval = op.i64;
          of = signed_overflow(newval, 0, op.bits, op.ow, &wrapped);
          if (of) newval = wrapped;
          retval = oldval;
        }
        if (!(of && op.ow == overflow::fail)) {
          c.out.integer(retval);
          set_unsigned_bits(p, op.offset, op.bits, static_cast<std::uint64_t>(newval));
          if (grown || oldval != newval) ++changes;
        } else {
          c.out.null_bulk();
        }
      } else {
        std::uint64_t oldval = get_unsigned_bits(p, op.offset, op.bits), newval, wrapped = 0, retval;
        int of;
        if (op.op == bf_op::incrby) {
          newval = oldval + static_cast<std::uint64_t>(op.i64);
          of = unsigned_overflow(oldval, op.i64, op.bits, op.ow, &wrapped);
          if (of) newval = wrapped;
          retval = newval;
        } else {
          newval = static_cast<std::uint64_t>(op.i64);
          of = unsigned_overflow(newval, 0, op.bits, op.ow, &wrapped);
          if (of) newval = wrapped;
          retval = oldval;
        }
        if (!(of && op.ow == overflow::fail)) {
          c.out.integer(static_cast<long long>(retval));
          set_unsigned_bits(p, op.offset, op.bits, newval);
          if (grown || oldval != newval) ++changes;
        } else {
          c.out.null_bulk();
        }
      }
    } else {
      unsigned char buf[9] = {0};
      std::string_view s = e ? keyspace::value_of(e) : std::string_view();
      const std::uint64_t byte = op.offset >> 3;
      for (std::uint64_t i = 0; i < 9 && byte + i < s.size(); ++i) buf[i] = static_cast<unsigned char>(s[byte + i]);
      if (op.sign)
        c.out.integer(get_signed_bits(buf, op.offset - byte * 8, op.bits));
      else
        c.out.integer(static_cast<long long>(get_unsigned_bits(buf, op.offset - byte * 8, op.bits)));
    }
  }
  if (changes) modified(c, a[1], "setbit");
}

void cmd_bitfield(command_ctx& c) { bitfield_generic(c, false); }
void cmd_bitfield_ro(command_ctx& c) { bitfield_generic(c, true); }

}  // namespace

void register_bitmap_commands(command_table& t) {
  t.add("setbit", &cmd_setbit);
  t.add("getbit", &cmd_getbit);
  t.add("bitcount", &cmd_bitcount);
  t.add("bitpos", &cmd_bitpos);
  t.add("bitop", &cmd_bitop);
  t.add("bitfield", &cmd_bitfield);
  t.add("bitfield_ro", &cmd_bitfield_ro);
}

}  // namespace turret::kv
