// How a collective call names its function (detail/call_identity.hpp): two functions of one type
// differ, the same function is named the same way every time and in another process of the same
// program (where ASLR loads it elsewhere), and lambdas are told apart by their type.
#include <amorsize/detail/call_identity.hpp>

#include <catch2/catch.hpp>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>

using amorsize::detail::call_identity;
using amorsize::detail::call_name;

namespace {

/// One of two functions of the same type.
int add_one(const int& x) {
  return x + 1;
}

/// The other.
int add_thousand(const int& x) {
  return x + 1000;
}

/// A class with two member functions of one type, one of them virtual.
struct counter {
  virtual ~counter() = default;
  /// Returns one more than the count.
  [[nodiscard]] int next() const { return count + 1; }
  /// Returns one less than the count.
  [[nodiscard]] virtual int previous() const { return count - 1; }
  int count = 0;  ///< The count.
};

/// Writes an address in hexadecimal as function_place does.
std::string hex_address(const void* address) {
  std::ostringstream out;
  out << std::hex << reinterpret_cast<std::uintptr_t>(address);
  return out.str();
}

/// Runs this test binary again with only the hidden test case `name` and returns the line of its
/// output that starts with `prefix`, without the prefix ("" when there is none).
std::string line_from_child(const std::string& name, const std::string& prefix) {
  // popen runs a shell, whose /proc/self/exe is the shell: name this program by its path.
  const std::string command = "'" + std::filesystem::read_symlink("/proc/self/exe").string() + "' \"" + name + "\" 2>&1";
  FILE* child = popen(command.c_str(), "r");
  REQUIRE(child != nullptr);
  std::string output;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, child) != nullptr) {
    output += buffer;
  }
  CHECK(pclose(child) == 0);
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  }
  FAIL("no line starting with '" << prefix << "' in the child's output:\n" << output);
  return {};
}

}  // namespace

TEST_CASE("two functions of one type have different identities and one function always the same", "[call_identity]") {
  using int_function = int (*)(const int&);
  const int_function f = add_one;
  const int_function g = add_thousand;
  const std::string identity_f = call_identity(f);
  INFO("add_one: " << identity_f << "; add_thousand: " << call_identity(g));
  CHECK_FALSE(identity_f.empty());
  CHECK(identity_f != call_identity(g));
  CHECK(identity_f == call_identity(f));
  CHECK(identity_f == call_identity(int_function{add_one}));
  // A place in the module, never the address itself (which differs between processes).
  CHECK(identity_f.find("+0x") != std::string::npos);
  CHECK(identity_f.find(hex_address(reinterpret_cast<const void*>(f))) == std::string::npos);
  CHECK(call_identity(int_function{}) == "null");

  // The whole call name: method, number, readable types, identity.
  CHECK(call_name<int_function, int>("map", f, 7) == "map #7 of int (*)(int const&) " + identity_f + " on int");
  CHECK(call_name<int_function, int>("map", f, 7) != call_name<int_function, int>("map", g, 7));
}

TEST_CASE("an exported function is named by its symbol and module", "[call_identity]") {
  using char_function = int (*)(int);
  const std::string upper = call_identity(char_function{::toupper});
  const std::string lower = call_identity(char_function{::tolower});
  INFO("toupper: " << upper << "; tolower: " << lower);
  CHECK(upper.find("toupper at libc") == 0);
  CHECK(lower.find("tolower at libc") == 0);
}

TEST_CASE("a std::function is named by the function it holds or else by its target's type", "[call_identity]") {
  const std::string f = call_identity(&add_one);
  const std::function<int(const int&)> wrapped_f = add_one;
  const std::function<int(const int&)> wrapped_g = add_thousand;
  INFO("add_one: " << f << "; wrapped: " << call_identity(wrapped_f));
  CHECK(call_identity(wrapped_f) == "holding int (*)(int const&) " + f);
  CHECK(call_identity(wrapped_f) != call_identity(wrapped_g));

  // A function taking its parameter by value, in a std::function taking it by reference.
  const std::function<int(const int&)> by_value = [](int x) { return x; };
  const std::function<int(const int&)> by_value_f = static_cast<int (*)(int)>(::abs);
  CHECK(call_identity(by_value_f).find("holding int (*)(int) abs at libc") == 0);

  // A lambda target: its type names it.
  CHECK(call_identity(by_value).find("lambda") != std::string::npos);
  CHECK(call_identity(std::function<int(const int&)>{}) == "empty");
}

TEST_CASE("lambdas and functors are told apart by their type", "[call_identity]") {
  const auto one = [](const int& x) { return x + 1; };
  const auto other = [](const int& x) { return x + 1; };
  CHECK(call_identity(one).empty());
  CHECK(call_name<decltype(one), int>("map", one, 1) != call_name<decltype(other), int>("map", other, 1));
  CHECK(call_name<decltype(one), int>("map", one, 1) == call_name<decltype(one), int>("map", one, 1));
  CHECK(call_name<decltype(one), int>("map", one, 1).find("lambda") != std::string::npos);
}

TEST_CASE("member functions of one type have different identities", "[call_identity]") {
  using member = int (counter::*)() const;
  const std::string next = call_identity(member{&counter::next});
  const std::string previous = call_identity(member{&counter::previous});
  INFO("next: " << next << "; previous: " << previous);
  CHECK_FALSE(next.empty());
  CHECK(next != previous);
  CHECK(next == call_identity(member{&counter::next}));
  CHECK(next.find("+0x") != std::string::npos);
  CHECK(previous.find("virtual slot") == 0);
}

// Run by the next test case in a new process of this program.
TEST_CASE("print call identities", "[.call_identity_child]") {
  std::printf("add_one: %s\n", call_identity(&add_one).c_str());
  std::printf("next: %s\n", call_identity(&counter::next).c_str());
}

TEST_CASE("identities are the same in another process of the same program", "[call_identity]") {
  CHECK(line_from_child("print call identities", "add_one: ") == call_identity(&add_one));
  CHECK(line_from_child("print call identities", "next: ") == call_identity(&counter::next));
}
