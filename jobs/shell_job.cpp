// `run shell`: options, the task list, running one task, and its record.

#include "jobs/shell_job.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

namespace amorsize::jobs {
namespace {

/// True when `line` has nothing but spaces and tabs: not a task.
bool blank(std::string_view line) { return line.find_first_not_of(" \t") == std::string_view::npos; }

/// Reads the next task line from `in` into `line` (its line end and a trailing CR removed), skipping blank lines.
bool next_task_line(std::istream& in, std::string& line) {
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!blank(line)) return true;
  }
  if (in.bad()) throw source_error("reading the task list failed: " + std::string(std::strerror(errno)));
  return false;
}

/// Returns the number of tasks in the file at `path` (lines that are not blank).
std::size_t count_tasks(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::size_t tasks = 0;
  while (next_task_line(in, line)) ++tasks;
  return tasks;
}

/// Returns the last line of `text` that is not blank, without its trailing spaces, at most 200
/// bytes: the gist of an error output.
std::string last_line(std::string_view text) {
  std::string_view last;
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t end = std::min(text.find('\n', begin), text.size());
    std::string_view line = text.substr(begin, end - begin);
    line = line.substr(0, line.find_last_not_of("\r \t") + 1);  // npos + 1 == 0: all blank
    if (!blank(line)) last = line;
    begin = end + 1;
  }
  return std::string(last.substr(0, 200));
}

}  // namespace

void shell_job::add_options(CLI::App& cmd) {
  runner::add_text(cmd, "-i,--input", input, "The task list: one task per line (blank lines skipped); - reads stdin")
      ->required();
  runner::add_text(cmd, "-c,--command", command,
                   "The command per task, with placeholders {} {.} {/} {//} {/.} {#} {%}; without one the line is "
                   "appended as the last argument")
      ->required();
  cmd.add_flag("--shell", use_shell, "Run the command through /bin/sh -c (placeholders are substituted single-quoted)");
  runner::add_number<std::size_t>(cmd, "--capture-bytes", capture_bytes, 0, std::size_t{1} << 30U,
                                  "Bytes of each task's stdout and of its stderr kept in its record (the rest is counted)");
  runner::add_text(cmd, "--results", results, "Write each task's whole stdout and stderr to DIR/NUMBER.stdout and .stderr");
}

void shell_job::check() const {
  (void)parse_command_template(command);
  if (input != "-") {
    struct stat info {};
    if (::stat(input.c_str(), &info) != 0) {
      throw input_error("--input " + input + " cannot be read: " + std::strerror(errno));
    }
    if (S_ISDIR(info.st_mode)) throw input_error("--input " + input + " is a folder: give a file with one task per line");
    // A pipe or FIFO can be read once: only the run reads it; a file is tried here.
    if (S_ISREG(info.st_mode) && !std::ifstream(input)) {
      throw input_error("--input " + input + " cannot be read: " + std::strerror(errno));
    }
  }
  if (!results.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(results, ec);
    if (ec) throw input_error("--results " + results + " cannot be made: " + ec.message());
    // Permissions do not tell (root, read-only mounts, /proc): write a file and remove it.
    const std::string probe = results + "/.amorsize-probe-" + std::to_string(::getpid());
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw input_error("--results " + results + " is not a folder tasks can write to: " + std::strerror(errno));
    ::close(fd);
    ::unlink(probe.c_str());
  }
}

std::vector<std::string> shell_job::inputs() const {
  if (input == "-") return {};
  return {input};
}

source<shell_item> shell_job::items() const {
  if (!session::current().is_root()) return {};  // only the root's source is read
  std::shared_ptr<std::istream> in;
  std::optional<std::size_t> size;
  if (input == "-") {
    in = std::shared_ptr<std::istream>(&std::cin, [](std::istream*) {});
  } else {
    struct stat info {};
    if (::stat(input.c_str(), &info) == 0 && S_ISREG(info.st_mode)) size = count_tasks(input);  // a pipe is read once
    in = std::make_shared<std::ifstream>(input);
  }
  return make_source(
      [in, number = std::size_t{0}, line = std::string()]() mutable -> std::optional<shell_item> {
        if (!next_task_line(*in, line)) return std::nullopt;
        return shell_item{++number, line};
      },
      size);
}

std::function<shell_result(const shell_item&)> shell_job::function() const {
  auto parsed = std::make_shared<const command_template>(parse_command_template(command));
  const task_options options{capture_bytes, results, timeout_seconds};
  return [parsed, text = command, shell = use_shell, options](const shell_item& item) {
    const int worker = current_worker();
    const task_fields fields{item.line, item.number, worker + 1};
    shell_result r;
    r.number = item.number;
    r.input = item.line;
    std::vector<std::string> arguments;
    if (shell) {
      r.command = expand_for_shell(text, fields);
      arguments = {"/bin/sh", "-c", r.command};
    } else {
      arguments = expand_arguments(*parsed, fields);
      r.command = command_line_text(arguments);
    }
    r.outcome = run_task(arguments, options, std::to_string(item.number));
    r.host = node_name();
    r.worker = worker;
    return r;
  };
}

runner::record_fields shell_job::record(const shell_result& result) const {
  const task_outcome& o = result.outcome;
  runner::record_fields r;
  auto& f = r.fields;
  f["input"] = result.input;
  f["command"] = result.command;
  f["exit_code"] = o.exit_code;
  if (o.signal != 0) f["signal"] = o.signal;
  if (o.timed_out) f["timed_out"] = true;
  f["host"] = result.host;
  f["worker"] = result.worker;
  f["start"] = o.start;
  f["seconds"] = o.seconds;
  if (results.empty()) {
    f["stdout"] = o.out;
    f["stderr"] = o.err;
    if (o.out_truncated()) f["stdout_bytes"] = o.out_bytes;
    if (o.err_truncated()) f["stderr_bytes"] = o.err_bytes;
    if (o.out_truncated()) f["stdout_truncated"] = true;
    if (o.err_truncated()) f["stderr_truncated"] = true;
  } else {
    const std::string stem = results + "/" + std::to_string(result.number);
    f["stdout_file"] = stem + ".stdout";
    f["stderr_file"] = stem + ".stderr";
    f["stdout_bytes"] = o.out_bytes;
    f["stderr_bytes"] = o.err_bytes;
  }
  if (!o.ok()) {
    r.failure = o.failure;
    if (const std::string gist = last_line(o.err); !gist.empty() && results.empty()) r.failure += ": " + gist;
  }
  r.timing = runner::item_timing{o.start, o.seconds, result.worker, result.host};
  return r;
}

}  // namespace amorsize::jobs
