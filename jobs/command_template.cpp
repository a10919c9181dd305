#include "command_template.hpp"

#include <amorsize/error.hpp>

#include <array>
#include <cctype>
#include <optional>
#include <utility>

namespace amorsize::jobs {
namespace {

/// Every placeholder's spelling between the braces, with what it stands for: the one table.
constexpr std::array<std::pair<std::string_view, placeholder>, 7> placeholders = {{
    {"", placeholder::line},
    {".", placeholder::no_extension},
    {"/", placeholder::basename},
    {"//", placeholder::dirname},
    {"/.", placeholder::basename_no_extension},
    {"#", placeholder::task_number},
    {"%", placeholder::worker_slot},
}};

/// Characters that may stand between a placeholder's braces.
bool placeholder_char(char c) { return c == '/' || c == '.' || c == '#' || c == '%'; }

/// If `text` at `pos` starts a placeholder, returns it and moves `pos` past it; nullopt for other
/// text. A brace pair holding up to two placeholder characters that GNU parallel does not define is an error.
std::optional<placeholder> read_placeholder(std::string_view text, std::size_t& pos) {
  if (text[pos] != '{') return std::nullopt;
  std::size_t digits = pos + 1;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])) != 0) ++digits;
  if (digits > pos + 1 && digits < text.size() && text[digits] == '}') {
    throw input_error("GNU parallel's positional placeholder " + std::string(text.substr(pos, digits + 1 - pos)) +
                      " is not supported (a task is one line): use {} {.} {/} {//} {/.} {#} or {%}");
  }
  std::size_t end = pos + 1;
  while (end < text.size() && end - pos <= 2 && placeholder_char(text[end])) ++end;
  if (end >= text.size() || text[end] != '}') return std::nullopt;
  const std::string_view inside = text.substr(pos + 1, end - pos - 1);
  for (const auto& [spelling, kind] : placeholders) {
    if (spelling == inside) {
      pos = end + 1;
      return kind;
    }
  }
  throw input_error("unknown placeholder {" + std::string(inside) +
                    "} in the command: use {} {.} {/} {//} {/.} {#} or {%}");
}

/// The last path part of `path`.
std::string_view last_part(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

/// `path` without the extension of its last path part (a leading dot is not an extension).
std::string_view without_extension(std::string_view path) {
  const std::string_view base = last_part(path);
  const auto dot = base.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return path;
  return path.substr(0, path.size() - (base.size() - dot));
}

/// `value` in single quotes for the shell, its own single quotes written as '\''.
std::string shell_quoted(std::string_view value) {
  std::string out = "'";
  for (const char c : value) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string substitute(placeholder kind, const task_fields& task) {
  switch (kind) {
    case placeholder::line: return std::string(task.line);
    case placeholder::no_extension: return std::string(without_extension(task.line));
    case placeholder::basename: return std::string(last_part(task.line));
    case placeholder::dirname: {
      const auto slash = task.line.rfind('/');
      if (slash == std::string_view::npos) return ".";
      return slash == 0 ? "/" : std::string(task.line.substr(0, slash));
    }
    case placeholder::basename_no_extension: return std::string(without_extension(last_part(task.line)));
    case placeholder::task_number: return std::to_string(task.number);
    case placeholder::worker_slot: return std::to_string(task.slot);
  }
  return {};
}

command_template parse_command_template(std::string_view text) {
  command_template out;
  std::vector<template_piece> argument;
  std::string literal;
  bool in_argument = false;  // quotes make an argument even when empty: ''
  const auto flush_literal = [&] {
    if (!literal.empty()) argument.push_back({false, placeholder::line, std::move(literal)});
    literal.clear();
  };
  const auto end_argument = [&] {
    flush_literal();
    if (in_argument) out.arguments.push_back(std::move(argument));
    argument.clear();
    in_argument = false;
  };
  char quote = 0;  // the open quote, or 0
  for (std::size_t pos = 0; pos < text.size();) {
    const char c = text[pos];
    if (quote == 0 && (c == ' ' || c == '\t' || c == '\n')) {
      end_argument();
      ++pos;
      continue;
    }
    in_argument = true;
    if (const auto kind = read_placeholder(text, pos)) {
      flush_literal();
      argument.push_back({true, *kind, {}});
      out.has_placeholder = true;
      continue;
    }
    if (quote == '\'') {
      if (c == '\'') quote = 0;
      else literal += c;
    } else if (c == '\\' && pos + 1 < text.size() && (quote == 0 || std::string_view("\"\\$`").find(text[pos + 1]) != std::string_view::npos)) {
      literal += text[++pos];  // outside quotes any character, inside double quotes only " \ $ `
    } else if (quote == '"') {
      if (c == '"') quote = 0;
      else literal += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else {
      literal += c;
    }
    ++pos;
  }
  if (quote != 0) {
    throw input_error(std::string("the command has an unclosed ") + (quote == '"' ? "double" : "single") +
                      " quote: close it, or escape it with a backslash");
  }
  end_argument();
  if (out.arguments.empty()) throw input_error("the command is empty: give the program to run, e.g. --command 'gzip -9 {}'");
  return out;
}

std::vector<std::string> expand_arguments(const command_template& command, const task_fields& task) {
  std::vector<std::string> args;
  args.reserve(command.arguments.size() + 1);
  for (const auto& pieces : command.arguments) {
    std::string arg;
    for (const template_piece& piece : pieces) arg += piece.is_placeholder ? substitute(piece.kind, task) : piece.text;
    args.push_back(std::move(arg));
  }
  if (!command.has_placeholder) args.emplace_back(task.line);
  return args;
}

std::string expand_for_shell(std::string_view text, const task_fields& task) {
  std::string out;
  bool substituted = false;
  for (std::size_t pos = 0; pos < text.size();) {
    if (const auto kind = read_placeholder(text, pos)) {
      out += shell_quoted(substitute(*kind, task));
      substituted = true;
      continue;
    }
    out += text[pos++];
  }
  if (out.find_first_not_of(" \t\n") == std::string::npos) {
    throw input_error("the command is empty: give the shell code to run, e.g. --shell --command 'gzip -9 {}'");
  }
  if (!substituted) out += " " + shell_quoted(task.line);
  return out;
}

std::string command_line_text(const std::vector<std::string>& arguments) {
  std::string text;
  for (const std::string& argument : arguments) {
    if (!text.empty()) text += ' ';
    const bool plain = !argument.empty() && argument.find_first_not_of(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:=,+-@%") == std::string::npos;
    text += plain ? argument : shell_quoted(argument);
  }
  return text;
}

}  // namespace amorsize::jobs
