// Where things are in the emulator's module: this OS thread's copy of its TLS segment (the __shared__
// variables are `static thread_local`, see include/cuda_runtime.h), which TLS symbols are __shared__
// variables (the ELF symbol table: function-local TLS variables of the kernel namespaces), its read-only
// data, and the source line of a code address (addr2line, only when a fault is reported).
#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>

#include "internal.h"

namespace cuemu::detail {

namespace {

// Touched before the TLS segment is located: a dynamically loaded module's TLS block is allocated for a
// thread on its first TLS access.
thread_local volatile char t_anchor = 0;

// Namespaces whose function-local TLS variables are __shared__ variables: the kernels and the emulator's
// own test kernels. (Other TLS of the module, e.g. the CPU backend's per-thread scratch, is not shared.)
constexpr const char* kKernelNamespaces[] = {"simcsepp::cuda::", "cuemu_selftest::"};

struct Module {
  uintptr_t bias = 0;
  std::string path;
  size_t tlsSize = 0;
  std::vector<std::pair<uintptr_t, uintptr_t>> readonly;  // [lo, hi) of non-writable PT_LOAD segments
  std::vector<SharedVar> vars;
  bool found = false;
};

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(name);
}

bool is_shared_var(const std::string& n) {
  if (n.find(")::") == std::string::npos) return false;  // not function-local
  for (const char* ns : kKernelNamespaces)
    if (n.rfind(ns, 0) == 0) return true;
  return false;
}

// Reads the TLS symbols of an ELF file's .symtab.
void read_tls_symbols(const std::string& path, std::vector<SharedVar>& out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    close(fd);
    return;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return;
  const char* base = static_cast<const char*>(m);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
      eh->e_shoff + static_cast<size_t>(eh->e_shnum) * sizeof(Elf64_Shdr) <= size) {
    const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
    for (int i = 0; i < eh->e_shnum; ++i) {
      if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
      const Elf64_Shdr& strs = sh[sh[i].sh_link];
      if (sh[i].sh_offset + sh[i].sh_size > size || strs.sh_offset + strs.sh_size > size) continue;
      const auto* syms = reinterpret_cast<const Elf64_Sym*>(base + sh[i].sh_offset);
      const size_t count = sh[i].sh_size / sizeof(Elf64_Sym);
      for (size_t k = 0; k < count; ++k) {
        if (ELF64_ST_TYPE(syms[k].st_info) != STT_TLS || syms[k].st_name >= strs.sh_size) continue;
        const std::string name = demangle(base + strs.sh_offset + syms[k].st_name);
        static const std::string kGuard = "guard variable for ";
        if (is_shared_var(name)) out.push_back(SharedVar{syms[k].st_value, syms[k].st_size, name, false});
        if (name == kDynamicSharedAreaName)
          out.push_back(SharedVar{syms[k].st_value, syms[k].st_size, "dynamic shared memory", false, true});
        if (name.rfind(kGuard, 0) == 0 && is_shared_var(name.substr(kGuard.size())))
          out.push_back(SharedVar{syms[k].st_value, syms[k].st_size, name.substr(kGuard.size()), true});
      }
    }
  }
  munmap(m, size);
  std::sort(out.begin(), out.end(), [](const SharedVar& a, const SharedVar& b) { return a.offset < b.offset; });
}

struct Probe {
  uintptr_t code;  // an address inside the module
  Module* mod;
  uintptr_t tlsData = 0;
};

int find_module(struct dl_phdr_info* info, size_t, void* data) {
  auto* p = static_cast<Probe*>(data);
  bool mine = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && p->code >= lo && p->code < lo + ph.p_memsz) mine = true;
  }
  if (!mine) return 0;
  p->tlsData = reinterpret_cast<uintptr_t>(info->dlpi_tls_data);
  if (!p->mod->found) {
    Module& m = *p->mod;
    m.found = true;
    m.bias = info->dlpi_addr;
    m.path = info->dlpi_name != nullptr && info->dlpi_name[0] != '\0' ? info->dlpi_name : "/proc/self/exe";
    for (int i = 0; i < info->dlpi_phnum; ++i) {
      const ElfW(Phdr)& ph = info->dlpi_phdr[i];
      if (ph.p_type == PT_TLS) m.tlsSize = ph.p_memsz;
      if (ph.p_type == PT_LOAD && (ph.p_flags & PF_W) == 0)
        m.readonly.emplace_back(info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
    }
    read_tls_symbols(m.path, m.vars);
  }
  return 1;
}

Module& module() {
  static Module* m = [] {
    auto* mod = new Module();
    Probe p{reinterpret_cast<uintptr_t>(&find_module), mod};
    dl_iterate_phdr(find_module, &p);
    return mod;
  }();
  return *m;
}

}  // namespace

ModuleTls module_tls() {
  Module& m = module();
  (void)t_anchor;  // allocates this thread's TLS block of the module
  Probe p{reinterpret_cast<uintptr_t>(&find_module), &m};
  dl_iterate_phdr(find_module, &p);
  ModuleTls t;
  t.vars = &m.vars;
  if (p.tlsData != 0) {
    t.lo = p.tlsData;
    t.hi = p.tlsData + m.tlsSize;
  }
  return t;
}

bool in_readonly_data(uintptr_t a, size_t n) {
  for (const auto& [lo, hi] : module().readonly)
    if (a >= lo && a + n <= hi) return true;
  return false;
}

std::string short_name(const std::string& demangled) {
  const size_t at = demangled.rfind("::");
  return at == std::string::npos ? demangled : demangled.substr(at + 2);
}

// "dot_tile" of "void simcsepp::cuda::tile::dot_tile<Identity>(float const*, ...)": no return type,
// namespaces, template arguments or parameters.
std::string function_name(std::string s) {
  for (size_t at; (at = s.find("(anonymous namespace)")) != std::string::npos;) s.replace(at, 21, "anon");
  const size_t params = s.find('(');
  if (params != std::string::npos) s.resize(params);
  std::string plain;
  int depth = 0;
  for (char ch : s) {
    if (ch == '<') ++depth;
    if (depth == 0) plain += ch;
    if (ch == '>' && depth > 0) --depth;
  }
  const size_t space = plain.rfind(' ');
  if (space != std::string::npos) plain = plain.substr(space + 1);
  return short_name(plain);
}

std::string short_path(const std::string& path) {
  size_t cut = path.rfind('/');
  if (cut != std::string::npos && cut > 0) cut = path.rfind('/', cut - 1);
  return cut == std::string::npos ? path : path.substr(cut + 1);
}

std::string source_of(const void* pc) {
  Dl_info info{};
  if (pc == nullptr || dladdr(pc, &info) == 0 || info.dli_fname == nullptr) return "";
  const uintptr_t offset = reinterpret_cast<uintptr_t>(pc) - reinterpret_cast<uintptr_t>(info.dli_fbase) - 1;
  std::ostringstream cmd;
  cmd << "addr2line -f -C -i -e '" << info.dli_fname << "' 0x" << std::hex << offset << " 2>/dev/null";
  FILE* f = popen(cmd.str().c_str(), "r");
  if (f == nullptr) return "";
  std::vector<std::string> lines;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), f) != nullptr) {
    std::string s(buf);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    lines.push_back(s);
  }
  pclose(f);
  // Pairs of (function, file:line), innermost first; keep the innermost location and its function.
  if (lines.size() < 2 || lines[1].rfind("??", 0) == 0) return "";
  std::string file = lines[1];
  const size_t paren = file.find(" (discriminator");
  if (paren != std::string::npos) file.resize(paren);
  file = short_path(file);
  return file + " (" + function_name(lines[0]) + ")";
}

}  // namespace cuemu::detail
