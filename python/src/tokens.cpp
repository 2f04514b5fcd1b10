// python/src/tokens.cpp — SequenceHash, TokenBlock, TokenBlockSequence.
//
// Values: a SequenceHash is copied into its Python object (32 bytes), hashable and ordered by
// its 128-bit value. Token lists cross as Python lists of ints (one conversion per call).
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <sstream>

#include "common.hpp"

namespace kvbm::python {
namespace {

nb::int_ to_int(u128 value) {
  nb::object hi = nb::steal(PyLong_FromUnsignedLongLong(static_cast<std::uint64_t>(value >> 64)));
  nb::object lo = nb::steal(PyLong_FromUnsignedLongLong(static_cast<std::uint64_t>(value)));
  nb::object shift = nb::int_(64);
  nb::object shifted = nb::steal(PyNumber_Lshift(hi.ptr(), shift.ptr()));
  if (!shifted.is_valid()) throw nb::python_error();
  nb::object out = nb::steal(PyNumber_Or(shifted.ptr(), lo.ptr()));
  if (!out.is_valid()) throw nb::python_error();
  return nb::borrow<nb::int_>(out);
}

u128 from_int(nb::handle value) {
  if (!PyLong_Check(value.ptr())) throw nb::type_error("SequenceHash.from_int: expected an int");
  unsigned char bytes[16];
  // Little-endian, unsigned; fails (OverflowError) for negatives and values >= 2**128.
#if PY_VERSION_HEX >= 0x030D0000
  if (PyLong_AsNativeBytes(value.ptr(), bytes, 16,
                           Py_ASNATIVEBYTES_LITTLE_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER |
                               Py_ASNATIVEBYTES_REJECT_NEGATIVE) < 0 ||
      PyLong_AsNativeBytes(value.ptr(), nullptr, 0, Py_ASNATIVEBYTES_UNSIGNED_BUFFER) > 16) {
    throw nb::value_error("SequenceHash.from_int: value must be in 0 .. 2**128 - 1");
  }
#else
  if (_PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(value.ptr()), bytes, 16,
                          /*little_endian=*/1, /*is_signed=*/0) < 0) {
    PyErr_Clear();
    throw nb::value_error("SequenceHash.from_int: value must be in 0 .. 2**128 - 1");
  }
#endif
  u128 out = 0;
  for (int i = 15; i >= 0; --i) out = (out << 8) | bytes[i];
  return out;
}

std::string repr(const SequenceHash& h) {
  std::ostringstream os;
  os << "SequenceHash(position=" << h.position() << ", current=0x" << std::hex
     << h.current_fragment() << ")";
  return os.str();
}

}  // namespace

void bind_tokens(nb::module_& m) {
  nb::class_<SequenceHash>(
      m, "SequenceHash",
      "The 128-bit positional lineage hash that names a KV block: position, the block's chained "
      "64-bit sequence hash and a fragment of its parent's. Hashable; ordered by as_int().")
      .def_static("from_parts", &SequenceHash::from_parts, nb::arg("current"),
                  nb::arg("parent").none(), nb::arg("position"),
                  "Packs a hash; raises PositionOutOfRange when position >= 2**24.")
      .def_static(
          "from_int", [](nb::int_ value) { return SequenceHash::from_u128(from_int(value)); },
          nb::arg("value"), "Rebuilds a hash from its 128-bit value (as_int()).")
      .def_prop_ro("position", &SequenceHash::position, "The block's index in its sequence.")
      .def_prop_ro("current_fragment", &SequenceHash::current_fragment,
                   "The block's full 64-bit chained sequence hash.")
      .def_prop_ro("parent_fragment", &SequenceHash::parent_fragment,
                   "The stored fragment of the parent's sequence hash; 0 for position 0.")
      .def(
          "as_int", [](const SequenceHash& h) { return to_int(h.as_u128()); },
          "The packed 128-bit value as a Python int.")
      .def("__eq__", [](const SequenceHash& a, const SequenceHash& b) { return a == b; }, nb::is_operator())
      .def("__ne__", [](const SequenceHash& a, const SequenceHash& b) { return a != b; }, nb::is_operator())
      .def("__lt__",
           [](const SequenceHash& a, const SequenceHash& b) { return a.as_u128() < b.as_u128(); },
           nb::is_operator())
      .def("__le__",
           [](const SequenceHash& a, const SequenceHash& b) { return a.as_u128() <= b.as_u128(); },
           nb::is_operator())
      .def("__gt__",
           [](const SequenceHash& a, const SequenceHash& b) { return a.as_u128() > b.as_u128(); },
           nb::is_operator())
      .def("__ge__",
           [](const SequenceHash& a, const SequenceHash& b) { return a.as_u128() >= b.as_u128(); },
           nb::is_operator())
      .def("__hash__",
           [](const SequenceHash& h) {
             // -1 is Python's error marker for hash functions.
             const auto v = static_cast<Py_hash_t>(h.mix());
             return v == -1 ? Py_hash_t{-2} : v;
           })
      .def("__repr__", &repr);

  nb::class_<TokenBlock>(m, "TokenBlock",
                         "One full block of tokens with its hashes (a value; copies are cheap "
                         "enough for a block).")
      .def_prop_ro(
          "tokens",
          [](const TokenBlock& b) { return std::vector<Token>(b.tokens().begin(), b.tokens().end()); },
          "The block's tokens.")
      .def_prop_ro("block_size", &TokenBlock::block_size, "Number of tokens.")
      .def_prop_ro("position", &TokenBlock::position, "Index of the block in its sequence.")
      .def_prop_ro("block_hash", &TokenBlock::block_hash,
                   "xxh3-64 of the block's tokens, seeded with the salt.")
      .def_prop_ro("sequence_hash", &TokenBlock::sequence_hash,
                   "The block's SequenceHash (what managers match on).")
      .def("__repr__", [](const TokenBlock& b) {
        return "TokenBlock(position=" + std::to_string(b.position()) +
               ", block_size=" + std::to_string(b.block_size()) + ")";
      });

  nb::class_<TokenBlockSequence>(
      m, "TokenBlockSequence",
      "A token list split into full blocks of `block_size`; the tail that does not fill a block "
      "has no hash yet. Not synchronised: one owner at a time.")
      .def(nb::init<std::vector<Token>, std::uint32_t, std::uint64_t>(), nb::arg("tokens"),
           nb::arg("block_size"), nb::arg("salt") = 0,
           "Splits and hashes `tokens`; raises ConfigError if block_size is 0.")
      .def("blocks", &TokenBlockSequence::blocks, "The full blocks, in order (copies).")
      .def("sequence_hashes", &TokenBlockSequence::sequence_hashes,
           "The full blocks' sequence hashes, in order.")
      .def("append", &TokenBlockSequence::append, nb::arg("token"),
           "Appends one token; True when it completed a block.")
      .def(
          "extend",
          [](TokenBlockSequence& s, const std::vector<Token>& tokens) { s.extend(tokens); },
          nb::arg("tokens"), "Appends tokens.")
      .def(
          "tokens",
          [](const TokenBlockSequence& s) {
            return std::vector<Token>(s.tokens().begin(), s.tokens().end());
          },
          "Every token, the partial tail included.")
      .def_prop_ro("total_tokens", &TokenBlockSequence::total_tokens, "Number of tokens.")
      .def_prop_ro("block_size", &TokenBlockSequence::block_size, "Tokens per block.")
      .def_prop_ro("salt", &TokenBlockSequence::salt, "The salt of block 0's hash.")
      .def("__len__", &TokenBlockSequence::total_tokens);
}

}  // namespace kvbm::python
