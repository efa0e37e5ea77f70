// Runs a resnetc launch plan on the CPU through cuda_host.h.
//
// usage: emu PLAN WEIGHTS INPUT OUTPUT
// PLAN is text written by the Rust test from CudaProgram::plan(batch):
//   batch B / buffers N n0 n1 ... / input I / output O LEN / launches L
//   then per launch: NAME GX GY GZ BLOCK NARGS ARG... with ARG one of Bi (buffer), Woff:len
//   (weights), N (null), b (the batch).
// WEIGHTS, INPUT and OUTPUT are raw little-endian float32. Every buffer and every weight operand
// is its own exact-size allocation, so an address sanitizer sees any out-of-bounds access.
#include "cuda_host.h"

#include <string.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>

#include "kernels.cu"
#include "dispatch.inc"

static std::vector<float> read_floats(const char* path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(2);
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / 4);
  memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s PLAN WEIGHTS INPUT OUTPUT\n", argv[0]);
    return 2;
  }
  std::ifstream plan(argv[1]);
  std::vector<float> weights = read_floats(argv[2]);
  std::vector<float> input = read_floats(argv[3]);
  std::string key;
  int batch = 0, nbuf = 0, in = 0, out = 0, nlaunch = 0;
  size_t out_len = 0;
  plan >> key >> batch >> key >> nbuf;
  std::vector<std::vector<float>> buffers(nbuf);
  for (auto& b : buffers) {
    size_t n;
    plan >> n;
    // NaN-filled, so a read of anything not written first shows up in the output.
    b.assign(n, NAN);
  }
  plan >> key >> in >> key >> out >> out_len >> key >> nlaunch;
  // Buffers are shared between values, so the input and output may fill only a prefix.
  if (input.size() > buffers[in].size() || out_len > buffers[out].size()) {
    fprintf(stderr, "the input (%zu) or output (%zu) does not fit its buffer\n", input.size(), out_len);
    return 2;
  }
  std::copy(input.begin(), input.end(), buffers[in].begin());
  for (int l = 0; l < nlaunch; ++l) {
    std::string name;
    unsigned gx, gy, gz, block;
    int nargs;
    plan >> name >> gx >> gy >> gz >> block >> nargs;
    std::vector<void*> args;
    std::vector<std::unique_ptr<std::vector<float>>> owned;
    for (int a = 0; a < nargs; ++a) {
      std::string s;
      plan >> s;
      if (s[0] == 'B') {
        args.push_back(buffers.at(std::stoul(s.substr(1))).data());
      } else if (s[0] == 'W') {
        size_t colon = s.find(':');
        size_t off = std::stoul(s.substr(1, colon - 1)), len = std::stoul(s.substr(colon + 1));
        if (off + len > weights.size()) {
          fprintf(stderr, "weights %zu:%zu outside the blob of %zu\n", off, len, weights.size());
          return 2;
        }
        owned.push_back(std::make_unique<std::vector<float>>(weights.begin() + off, weights.begin() + off + len));
        args.push_back(owned.back()->data());
      } else if (s[0] == 'N') {
        args.push_back(nullptr);
      } else {
        args.push_back(nullptr);  // the batch, passed separately
      }
    }
    emu::launch(emu_dim3{gx, gy, gz}, block, [&] { dispatch(name, args, batch); });
  }
  std::ofstream o(argv[4], std::ios::binary);
  o.write(reinterpret_cast<const char*>(buffers[out].data()), out_len * 4);
  fprintf(stderr, "%d launches, %lld barriers\n", nlaunch, emu::barriers);
  return 0;
}
