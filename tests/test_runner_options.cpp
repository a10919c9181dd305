// The runner's strict option values and its job registry.
#include <amorsize/runner.hpp>

#include <catch2/catch.hpp>

#include <limits>
#include <stdexcept>

namespace {

using amorsize::exit_code;
using amorsize::runner::parse_number;

/// Returns the exit code parse_number's error carries for `text` as an unsigned long in [1, 100].
exit_code rejection(const char* text) {
  try {
    (void)parse_number<unsigned long>(text, "--items", 1, 100);
  } catch (const amorsize::error& e) {
    return e.code();
  }
  return exit_code::ok;
}

/// A job with nothing to do, registered under `Name`.
template <char Name>
struct empty_job {
  using item_type = int;
  using result_type = int;
  static constexpr char name_text[2] = {Name, '\0'};
  static constexpr std::string_view name = name_text;
  static constexpr std::string_view summary = "nothing";
  void add_options(CLI::App& /*command*/) {}
  [[nodiscard]] amorsize::source<int> items() const { return {}; }
  [[nodiscard]] auto function() const {
    return [](int x) { return x; };
  }
  [[nodiscard]] amorsize::runner::record_fields record(const int& /*result*/) const { return {}; }
};

/// A job whose every record holds a thousand numbers.
struct wide_record_job : empty_job<'w'> {
  [[nodiscard]] amorsize::runner::record_fields record(const int& /*result*/) const {
    amorsize::runner::record_fields r;
    for (int i = 0; i < 1000; ++i) r.fields["numbers"].push_back(i);
    return r;
  }
};

/// A job whose record() needs a real result: a default one makes it throw.
struct picky_record_job : empty_job<'p'> {
  [[nodiscard]] amorsize::runner::record_fields record(const int& result) const {
    if (result == 0) throw std::invalid_argument("no result");
    return {};
  }
};

}  // namespace

TEST_CASE("the runner measures what making and formatting a job's record costs the root", "[runner]") {
  using amorsize::runner::detail::record_seconds_of;
  const double empty = record_seconds_of(empty_job<'e'>{});
  const double wide = record_seconds_of(wide_record_job{});
  CHECK(empty > 0.0);
  CHECK(empty < 1e-3);
  CHECK(wide > 5.0 * empty);  // a thousand numbers to build and print, against a key and an index
  CHECK(record_seconds_of(picky_record_job{}) == 0.0);  // not measured, and no error before the run
}

TEST_CASE("numbers are the whole text, in range, never clamped", "[runner]") {
  CHECK(parse_number<unsigned long>("42", "--items", 1, 100) == 42);
  CHECK(parse_number<int>("-3", "--x", -5, 5) == -3);
  CHECK(parse_number<double>("0.25", "--x", 0.0, 1.0) == 0.25);
  CHECK(parse_number<double>("1e-3", "--x", 0.0, 1.0) == 0.001);
  // Not a number: a usage error (exit 2).
  for (const char* text : {"fast", "5x", " 5", "+5", "0x10", "2.5"}) {
    INFO(text);
    CHECK(rejection(text) == exit_code::usage);
  }
  // A number out of range or no value at all: bad input (exit 3), including negatives and overflow of an unsigned option.
  for (const char* text : {"0", "101", "-1", "99999999999999999999", ""}) {
    INFO(text);
    CHECK(rejection(text) == exit_code::bad_input);
  }
  CHECK_THROWS_AS(parse_number<double>("nan", "--x", 0.0, 1.0), amorsize::input_error);
  CHECK_THROWS_AS(parse_number<double>("inf", "--x", 0.0, std::numeric_limits<double>::max()), amorsize::input_error);
  CHECK_THROWS_WITH(parse_number<unsigned long>("-1", "--seed", 0, 9),
                    "--seed must be a whole number from 0 to 9, got '-1'");
}

TEST_CASE("options reject empty values and bind strictly parsed numbers", "[runner]") {
  CLI::App app;
  std::string text = "default";
  std::size_t count = 7;
  std::optional<int> maybe;
  amorsize::runner::add_text(app, "-o,--output", text, "a text");
  amorsize::runner::add_number<std::size_t>(app, "--count", count, 1, 10, "a count");
  amorsize::runner::add_number(app, "--maybe", maybe, 1, 3, "an optional number");
  app.parse("--count 3 --output out.txt", false);
  CHECK(count == 3);
  CHECK(text == "out.txt");
  CHECK_FALSE(maybe.has_value());
  CHECK_THROWS_WITH(app.parse(std::vector<std::string>{"", "-o"}), "--output must not be empty: give a value or leave the option out");
  CHECK_THROWS_AS(app.parse("--count 11", false), amorsize::input_error);
  app.parse("--maybe 2", false);
  CHECK(maybe == 2);
}

TEST_CASE("a job registry keeps jobs in order and refuses a name twice", "[runner]") {
  amorsize::runner::job_registry jobs;
  jobs.add<empty_job<'a'>>().add<empty_job<'b'>>();
  REQUIRE(jobs.entries().size() == 2);
  CHECK(jobs.entries()[0].name == "a");
  CHECK(jobs.entries()[1].summary == "nothing");
  CHECK_THROWS_AS(jobs.add<empty_job<'a'>>(), std::invalid_argument);
}
