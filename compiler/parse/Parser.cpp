// ANTLR wrapper and the Transformer from parse tree to AST (one transformX per grammar rule).

#include "compiler/parse/Parser.h"

#include "RulesLexer.h"
#include "RulesParser.h"
#include "antlr4-runtime.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/Path.h"

#include <cassert>
#include <cctype>
#include <cstring>
#include <cerrno>
#include <optional>
#include <cstdlib>

namespace ckptmap {
namespace {

using grammar::RulesLexer;
using grammar::RulesParser;
using namespace ast;

/// Where the tokens of one parse lie in the rulebook file: whole files start at line 1
/// column 1; the text of a {...} interpolation starts inside a string literal.
struct TextOrigin {
  uint32_t file = 0;
  uint32_t line = 1;      ///< line of the text's first character
  uint32_t colOffset = 0; ///< added to columns on the first line
  bool interpolation = false; ///< the text of a {...}, whose end is its closing brace
};

/// Turns ANTLR's syntax errors into diagnostics at the offending position.
class SyntaxErrorListener : public antlr4::BaseErrorListener {
public:
  SyntaxErrorListener(DiagnosticEngine &diags, TextOrigin origin) : diags_(diags), origin_(origin) {}

  void syntaxError(antlr4::Recognizer *recognizer, antlr4::Token *offending, size_t line, size_t col,
                   const std::string &msg, std::exception_ptr) override {
    ++count;
    SourceRange range = rangeAt(line, col);
    std::string message = msg;
    antlr4::Token *unclosed = nullptr;
    if (offending) {
      std::string text = offending->getText();
      range.length = std::max<uint32_t>(1, uint32_t(text.size()));
      if (offending->getType() == RulesLexer::BAD_CHAR) {
        // A string literal ends on its line; a '"' left over starts one that never ends.
        message = text == "\"" ? "unterminated string" : "invalid character '" + text + "'";
      } else if (offending->getType() == antlr4::Token::EOF) {
        // ANTLR says "extraneous input '<EOF>'"; say what ran out instead.
        range.length = 1;
        if (origin_.interpolation) {
          message = "incomplete expression before '}'";
        } else {
          unclosed = unclosedBrace(recognizer);
          message = unclosed ? "unexpected end of file: a '{' is not closed" : "unexpected end of file";
        }
      }
    }
    Diagnostic &diag = diags_.error(range, "syntax error: " + shorten(message));
    if (unclosed) {
      SourceRange open = rangeAt(unclosed->getLine(), unclosed->getCharPositionInLine());
      diag.note("the '{' opened here", open);
    }
    if (offending && offending->getType() == RulesLexer::IDENT) {
      std::string keyword = closestMatch(offending->getText(), keywords());
      if (!keyword.empty() && keyword != offending->getText())
        diag.note("did you mean '" + keyword + "'?");
    } else if (antlr4::Token *word = lineStartBefore(recognizer, offending)) {
      // `scoep "a." = "b." {`: the misspelt keyword parses as a name and the error comes a
      // token later; point back at the word.
      std::string keyword = closestMatch(word->getText(), keywords());
      if (!keyword.empty() && keyword != word->getText()) {
        SourceRange at = rangeAt(word->getLine(), word->getCharPositionInLine());
        at.length = uint32_t(word->getText().size());
        diag.note("did you mean '" + keyword + "'?", at);
      }
    }
  }

  unsigned count = 0;

private:
  /// ANTLR's 1-based line and 0-based column, as a position in the rulebook file.
  SourceRange rangeAt(size_t line, size_t col) const {
    SourceRange range;
    range.begin.file = origin_.file;
    range.begin.line = origin_.line + uint32_t(line) - 1;
    range.begin.col = uint32_t(col) + 1 + (line == 1 ? origin_.colOffset : 0);
    return range;
  }

  /// The name just before `offending` when it is the first token of its line, which is
  /// where a statement's keyword goes.
  static antlr4::Token *lineStartBefore(antlr4::Recognizer *recognizer, antlr4::Token *offending) {
    auto *parser = dynamic_cast<antlr4::Parser *>(recognizer);
    if (!parser || !offending || offending->getType() == antlr4::Token::EOF || offending->getTokenIndex() == 0)
      return nullptr;
    antlr4::TokenStream *tokens = parser->getTokenStream();
    size_t index = offending->getTokenIndex() - 1;
    antlr4::Token *word = tokens->get(index);
    if (word->getType() != RulesLexer::IDENT || word->getLine() != offending->getLine())
      return nullptr;
    if (index > 0 && tokens->get(index - 1)->getLine() == word->getLine())
      return nullptr;
    return word;
  }

  /// The last '{' of the parsed text that no '}' closes, if any.
  static antlr4::Token *unclosedBrace(antlr4::Recognizer *recognizer) {
    auto *parser = dynamic_cast<antlr4::Parser *>(recognizer);
    if (!parser)
      return nullptr;
    antlr4::TokenStream *tokens = parser->getTokenStream();
    std::vector<antlr4::Token *> open;
    for (size_t i = 0; i < tokens->size(); ++i) {
      antlr4::Token *t = tokens->get(i);
      if (t->getText() == "{")
        open.push_back(t);
      else if (t->getText() == "}" && !open.empty())
        open.pop_back();
    }
    return open.empty() ? nullptr : open.back();
  }

  // ANTLR lists every token it could have accepted; past a handful that is noise. Token
  // kinds are grammar names ("missing IDENT at '='"); say them in words. Whether a token is
  // "extraneous" or "mismatched" is the parser's business; to the reader it is unexpected.
  static std::string shorten(std::string msg) {
    for (const char *jargon : {"extraneous input ", "mismatched input "}) {
      if (!llvm::StringRef(msg).startswith(jargon))
        continue;
      msg = "unexpected " + msg.substr(std::strlen(jargon));
      if (size_t at = msg.rfind("' expecting "); at != std::string::npos)
        msg.insert(at + 1, ",");
    }
    static const std::pair<const char *, const char *> words[] = {
        {"IDENT", "name"}, {"STRING", "string"}, {"INT", "integer"}, {"FLOAT", "number"}};
    for (auto [kind, word] : words) {
      for (size_t at = msg.find(kind); at != std::string::npos; at = msg.find(kind, at + 1)) {
        size_t end = at + std::strlen(kind);
        bool whole = (at == 0 || !std::isalnum((unsigned char)msg[at - 1])) &&
                     (end == msg.size() || !std::isalnum((unsigned char)msg[end]));
        // Quoted text is the rulebook's own and stays as written.
        bool quoted = std::count(msg.begin(), msg.begin() + at, '\'') % 2 == 1;
        if (whole && !quoted)
          msg.replace(at, end - at, word);
      }
    }
    size_t open = msg.find(" expecting {");
    if (open == std::string::npos)
      return msg;
    size_t close = msg.rfind('}');
    std::string set = msg.substr(open + 12, close - open - 12);
    if (std::count(set.begin(), set.end(), ',') < 6)
      return msg;
    return msg.substr(0, open > 0 && msg[open - 1] == ',' ? open - 1 : open);
  }

  static const std::vector<std::string> &keywords() {
    static const std::vector<std::string> words = {
        "rulebook", "model_types", "description", "layout", "include", "param",  "block",
        "mapping",  "optional",    "assert",      "for",     "in",     "if",
        "else",     "switch",      "case",        "default", "scope",  "use",
        "choose",   "variant",     "drop",        "because", "restore", "copy", "keep",
        "fill",     "from",        "base",        "otherwise"};
    return words;
  }

  DiagnosticEngine &diags_;
  TextOrigin origin_;
};

class Transformer {
public:
  Transformer(DiagnosticEngine &diags, TextOrigin origin) : diags_(diags), origin_(origin) {}

  void transformRulebook(RulesParser::RulebookContext *ctx, Rulebook &out, bool isTopFile);

  ExprPtr transformExpr(RulesParser::ExprContext *ctx);

private:
  SourceRange rangeOf(antlr4::Token *start, antlr4::Token *stop) const;
  SourceRange rangeOf(antlr4::ParserRuleContext *ctx) const {
    return rangeOf(ctx->getStart(), ctx->getStop());
  }
  SourceRange rangeOf(antlr4::Token *token) const { return rangeOf(token, token); }

  void transformItem(RulesParser::ItemContext *ctx, Rulebook &out);
  std::unique_ptr<ParamStmt> transformParam(RulesParser::ParamDeclContext *ctx);
  std::unique_ptr<AssertStmt> transformAssert(RulesParser::AssertStmtContext *ctx);
  StmtList transformStatements(const std::vector<RulesParser::StatementContext *> &ctxs);
  StmtList transformBody(RulesParser::BodyContext *ctx) { return transformStatements(ctx->statement()); }
  StmtPtr transformStatement(RulesParser::StatementContext *ctx);
  std::unique_ptr<RuleStmt> transformRule(RulesParser::MapRuleContext *ctx, SourceRange range, bool optional,
                                          bool fallback = false);
  std::unique_ptr<IfStmt> transformIf(RulesParser::IfChainContext *ctx);
  std::unique_ptr<DropStmt> transformDrop(RulesParser::DropStmtContext *ctx);
  ExprPtr transformPrimary(RulesParser::PrimaryContext *ctx);
  Argument transformArgument(RulesParser::ArgumentContext *ctx);
  std::unique_ptr<StringExpr> transformString(antlr4::Token *token);
  std::string convention(RulesParser::ConventionContext *ctx) const { return ctx->getText(); }
  /// The characters of a plain string literal (reasons, docs, model types).
  std::string plainString(antlr4::Token *token);

  DiagnosticEngine &diags_;
  TextOrigin origin_;
};

SourceRange Transformer::rangeOf(antlr4::Token *start, antlr4::Token *stop) const {
  SourceRange range;
  range.begin.file = origin_.file;
  range.begin.line = origin_.line + uint32_t(start->getLine()) - 1;
  range.begin.col = uint32_t(start->getCharPositionInLine()) + 1 +
                    (start->getLine() == 1 ? origin_.colOffset : 0);
  if (stop && stop->getLine() == start->getLine() && stop->getStopIndex() >= start->getStartIndex())
    range.length = uint32_t(stop->getStopIndex() - start->getStartIndex() + 1);
  else
    range.length = std::max<uint32_t>(1, uint32_t(start->getText().size()));
  return range;
}

void Transformer::transformRulebook(RulesParser::RulebookContext *ctx, Rulebook &out, bool isTopFile) {
  if (auto *header = ctx->header()) {
    if (!isTopFile) {
      diags_.error(rangeOf(header->getStart()), "an included file cannot have a rulebook header");
    } else {
      out.name = header->name->getText();
      out.nameRange = rangeOf(header->name);
      for (auto *field : header->headerField()) {
        if (auto *types = dynamic_cast<RulesParser::ModelTypesContext *>(field)) {
          for (auto *s : types->STRING())
            out.modelTypes.push_back(plainString(s->getSymbol()));
        } else if (auto *desc = dynamic_cast<RulesParser::DescriptionContext *>(field)) {
          out.description = plainString(desc->STRING()->getSymbol());
        } else if (auto *layout = dynamic_cast<RulesParser::LayoutDeclContext *>(field)) {
          LayoutDecl decl;
          decl.name = layout->name->getText();
          decl.nameRange = rangeOf(layout->name);
          decl.mcore = layout->kind->getText() == "mcore_layout";
          if (layout->doc)
            decl.doc = plainString(layout->doc);
          for (auto *pick : layout->layoutPick())
            decl.picks.push_back({pick->choice->getText(), pick->chosen->getText(), rangeOf(pick->choice),
                                  rangeOf(pick->chosen)});
          out.layouts.push_back(std::move(decl));
        }
      }
    }
  } else if (isTopFile) {
    antlr4::Token *first = ctx->getStart();
    diags_.error(rangeOf(first), "a rulebook must start with its header: rulebook NAME { model_types \"...\" }");
  }
  for (auto *item : ctx->item())
    transformItem(item, out);
}

void Transformer::transformItem(RulesParser::ItemContext *ctx, Rulebook &out) {
  if (auto *inc = dynamic_cast<RulesParser::IncludeContext *>(ctx)) {
    out.includes.push_back(Include{plainString(inc->STRING()->getSymbol()), rangeOf(inc->STRING()->getSymbol())});
  } else if (auto *p = dynamic_cast<RulesParser::ParamItemContext *>(ctx)) {
    out.params.push_back(transformParam(p->paramDecl()));
  } else if (auto *a = dynamic_cast<RulesParser::AssertItemContext *>(ctx)) {
    out.asserts.push_back(transformAssert(a->assertStmt()));
  } else if (auto *b = dynamic_cast<RulesParser::BlockDeclContext *>(ctx)) {
    auto block = std::make_unique<BlockDecl>();
    block->name = b->name->getText();
    block->nameRange = rangeOf(b->name);
    block->body = transformStatements(b->statement());
    out.blocks.push_back(std::move(block));
  } else if (auto *m = dynamic_cast<RulesParser::MappingDeclContext *>(ctx)) {
    auto mapping = std::make_unique<MappingDecl>();
    mapping->left = convention(m->from);
    mapping->right = convention(m->to);
    mapping->leftRange = rangeOf(m->from);
    mapping->rightRange = rangeOf(m->to);
    mapping->range = rangeOf(m->getStart(), m->to->getStop());
    mapping->body = transformStatements(m->statement());
    out.mappings.push_back(std::move(mapping));
  }
}

std::unique_ptr<ParamStmt> Transformer::transformParam(RulesParser::ParamDeclContext *ctx) {
  auto param = std::make_unique<ParamStmt>(rangeOf(ctx));
  param->name = ctx->name->getText();
  param->nameRange = rangeOf(ctx->name);
  param->value = transformExpr(ctx->expr());
  if (ctx->doc)
    param->doc = plainString(ctx->doc);
  return param;
}

std::unique_ptr<AssertStmt> Transformer::transformAssert(RulesParser::AssertStmtContext *ctx) {
  auto stmt = std::make_unique<AssertStmt>(rangeOf(ctx));
  stmt->condition = transformExpr(ctx->expr());
  if (ctx->message)
    stmt->message = plainString(ctx->message);
  return stmt;
}

StmtList Transformer::transformStatements(const std::vector<RulesParser::StatementContext *> &ctxs) {
  StmtList out;
  for (auto *ctx : ctxs)
    if (StmtPtr stmt = transformStatement(ctx)) {
      if (antlr4::Token *stop = ctx->getStop())
        stmt->setLastLine(origin_.line + uint32_t(stop->getLine()) - 1);
      out.push_back(std::move(stmt));
    }
  return out;
}

std::unique_ptr<RuleStmt> Transformer::transformRule(RulesParser::MapRuleContext *ctx, SourceRange range,
                                                     bool optional, bool fallback) {
  auto rule = std::make_unique<RuleStmt>(range);
  rule->left = transformExpr(ctx->left);
  rule->right = transformExpr(ctx->right);
  rule->optional = optional;
  rule->fallback = fallback;
  return rule;
}

std::unique_ptr<IfStmt> Transformer::transformIf(RulesParser::IfChainContext *ctx) {
  auto stmt = std::make_unique<IfStmt>(rangeOf(ctx->getStart(), ctx->cond->getStop()));
  stmt->condition = transformExpr(ctx->cond);
  stmt->thenBody = transformBody(ctx->then);
  if (ctx->elseBody)
    stmt->elseBody = transformBody(ctx->elseBody);
  else if (ctx->elseIf)
    stmt->elseBody.push_back(transformIf(ctx->elseIf));
  return stmt;
}

std::unique_ptr<DropStmt> Transformer::transformDrop(RulesParser::DropStmtContext *ctx) {
  auto drop = std::make_unique<DropStmt>(rangeOf(ctx->getStart(), ctx->reason));
  drop->side = convention(ctx->side);
  drop->sideRange = rangeOf(ctx->side);
  drop->pattern = transformString(ctx->pattern);
  drop->reason = plainString(ctx->reason);
  drop->fallback = ctx->fallback != nullptr;
  if (auto *restore = ctx->restore()) {
    if (auto *copy = dynamic_cast<RulesParser::RestoreCopyContext *>(restore)) {
      drop->restore = DropStmt::Restore::Copy;
      drop->copySource = transformString(copy->source);
    } else if (auto *fill = dynamic_cast<RulesParser::RestoreFillContext *>(restore)) {
      drop->restore = DropStmt::Restore::Fill;
      drop->fillValue = transformExpr(fill->value);
      drop->fillShape = transformExpr(fill->shape);
      drop->fillDType = fill->dtype->getText();
      drop->fillDTypeRange = rangeOf(fill->dtype);
    } else {
      drop->restore = DropStmt::Restore::FromBase;
      for (antlr4::Token *source : static_cast<RulesParser::RestoreFromBaseContext *>(restore)->sources)
        drop->baseSources.push_back(transformString(source));
    }
  }
  return drop;
}

StmtPtr Transformer::transformStatement(RulesParser::StatementContext *ctx) {
  if (auto *r = dynamic_cast<RulesParser::RuleStmtContext *>(ctx))
    return transformRule(r->mapRule(), rangeOf(r), false);
  if (auto *r = dynamic_cast<RulesParser::OptionalRuleStmtContext *>(ctx))
    return transformRule(r->mapRule(), rangeOf(r), true);
  if (auto *r = dynamic_cast<RulesParser::OtherwiseRuleStmtContext *>(ctx))
    return transformRule(r->mapRule(), rangeOf(r), false, true);
  if (auto *p = dynamic_cast<RulesParser::LocalParamStmtContext *>(ctx))
    return transformParam(p->paramDecl());
  if (auto *a = dynamic_cast<RulesParser::AssertStmtItemContext *>(ctx))
    return transformAssert(a->assertStmt());
  if (auto *f = dynamic_cast<RulesParser::ForStmtContext *>(ctx)) {
    auto stmt = std::make_unique<ForStmt>(rangeOf(f->getStart(), f->range()->getStop()));
    stmt->var = f->var->getText();
    stmt->varRange = rangeOf(f->var);
    stmt->lo = transformExpr(f->range()->lo);
    stmt->hi = transformExpr(f->range()->hi);
    stmt->body = transformBody(f->body());
    return stmt;
  }
  if (auto *i = dynamic_cast<RulesParser::IfStmtContext *>(ctx))
    return transformIf(i->ifChain());
  if (auto *s = dynamic_cast<RulesParser::SwitchStmtContext *>(ctx)) {
    auto stmt = std::make_unique<SwitchStmt>(rangeOf(s->getStart(), s->expr()->getStop()));
    stmt->subject = transformExpr(s->expr());
    for (auto *c : s->switchCase()) {
      SwitchCase sc;
      sc.range = rangeOf(c->getStart(), c->expr().back()->getStop());
      for (auto *v : c->expr())
        sc.values.push_back(transformExpr(v));
      sc.body = transformBody(c->body());
      stmt->cases.push_back(std::move(sc));
    }
    if (auto *d = s->defaultCase()) {
      stmt->hasDefault = true;
      stmt->defaultBody = transformBody(d->body());
    }
    return stmt;
  }
  if (auto *s = dynamic_cast<RulesParser::ScopeStmtContext *>(ctx)) {
    auto stmt = std::make_unique<ScopeStmt>(rangeOf(s->getStart(), s->right));
    stmt->left = transformString(s->left);
    stmt->right = transformString(s->right);
    stmt->body = transformBody(s->body());
    return stmt;
  }
  if (auto *u = dynamic_cast<RulesParser::UseStmtContext *>(ctx)) {
    auto stmt = std::make_unique<UseStmt>(rangeOf(u->name));
    stmt->name = u->name->getText();
    return stmt;
  }
  if (auto *c = dynamic_cast<RulesParser::ChooseStmtContext *>(ctx)) {
    auto stmt = std::make_unique<ChooseStmt>(rangeOf(c->getStart(), c->name));
    stmt->name = c->name->getText();
    stmt->nameRange = rangeOf(c->name);
    for (auto *v : c->variant()) {
      Variant variant;
      variant.name = v->name->getText();
      variant.nameRange = rangeOf(v->name);
      if (v->doc)
        variant.doc = plainString(v->doc);
      variant.body = transformBody(v->body());
      stmt->variants.push_back(std::move(variant));
    }
    return stmt;
  }
  if (auto *d = dynamic_cast<RulesParser::DropStmtContext *>(ctx))
    return transformDrop(d);
  if (auto *k = dynamic_cast<RulesParser::KeepStmtContext *>(ctx)) {
    auto stmt = std::make_unique<KeepStmt>(rangeOf(k));
    stmt->pattern = transformString(k->pattern);
    return stmt;
  }
  return nullptr;
}

static std::optional<BinaryOp> binaryOpOf(const std::string &text) {
  static const std::pair<const char *, BinaryOp> table[] = {
      {"+", BinaryOp::Add}, {"-", BinaryOp::Sub},  {"*", BinaryOp::Mul},  {"/", BinaryOp::Div},
      {"%", BinaryOp::Mod}, {"<", BinaryOp::Lt},   {"<=", BinaryOp::Le},  {">", BinaryOp::Gt},
      {">=", BinaryOp::Ge}, {"==", BinaryOp::Eq},  {"!=", BinaryOp::Ne},  {"and", BinaryOp::And},
      {"or", BinaryOp::Or}, {"??", BinaryOp::Default}};
  for (auto &[spelling, op] : table)
    if (text == spelling)
      return op;
  return std::nullopt;
}

ExprPtr Transformer::transformExpr(RulesParser::ExprContext *ctx) {
  SourceRange range = rangeOf(ctx);
  if (auto *p = dynamic_cast<RulesParser::PrimaryExprContext *>(ctx))
    return transformPrimary(p->primary());
  if (auto *m = dynamic_cast<RulesParser::MemberExprContext *>(ctx))
    return std::make_unique<MemberExpr>(range, transformExpr(m->expr()), m->IDENT()->getText(),
                                        rangeOf(m->IDENT()->getSymbol()));
  if (auto *i = dynamic_cast<RulesParser::IndexExprContext *>(ctx))
    return std::make_unique<IndexExpr>(range, transformExpr(i->expr(0)), transformExpr(i->expr(1)));
  if (auto *u = dynamic_cast<RulesParser::UnaryExprContext *>(ctx))
    return std::make_unique<UnaryExpr>(range, u->op->getText() == "-" ? UnaryOp::Neg : UnaryOp::Not,
                                       transformExpr(u->expr()));
  // Every remaining alternative is binary: two operands around one operator token.
  auto binary = [&](antlr4::ParserRuleContext *c, const std::vector<RulesParser::ExprContext *> &operands) {
    std::string opText = c->children.size() == 3 ? c->children[1]->getText() : "";
    auto op = binaryOpOf(opText);
    assert(op && operands.size() == 2);
    return std::make_unique<BinaryExpr>(range, *op, transformExpr(operands[0]), transformExpr(operands[1]));
  };
  if (auto *b = dynamic_cast<RulesParser::MulExprContext *>(ctx)) return binary(b, b->expr());
  if (auto *b = dynamic_cast<RulesParser::AddExprContext *>(ctx)) return binary(b, b->expr());
  if (auto *b = dynamic_cast<RulesParser::CompareExprContext *>(ctx)) return binary(b, b->expr());
  if (auto *b = dynamic_cast<RulesParser::EqualExprContext *>(ctx)) return binary(b, b->expr());
  if (auto *b = dynamic_cast<RulesParser::AndExprContext *>(ctx)) return binary(b, b->expr());
  if (auto *b = dynamic_cast<RulesParser::OrExprContext *>(ctx)) return binary(b, b->expr());
  if (auto *b = dynamic_cast<RulesParser::DefaultExprContext *>(ctx)) return binary(b, b->expr());
  return std::make_unique<NullExpr>(range);
}

ExprPtr Transformer::transformPrimary(RulesParser::PrimaryContext *ctx) {
  SourceRange range = rangeOf(ctx);
  if (auto *i = dynamic_cast<RulesParser::IntLitContext *>(ctx)) {
    errno = 0;
    long long v = std::strtoll(i->getText().c_str(), nullptr, 10);
    if (errno == ERANGE)
      diags_.error(range, "integer literal " + i->getText() + " is too large");
    return std::make_unique<IntExpr>(range, v);
  }
  if (auto *f = dynamic_cast<RulesParser::FloatLitContext *>(ctx))
    return std::make_unique<FloatExpr>(range, std::strtod(f->getText().c_str(), nullptr));
  if (auto *s = dynamic_cast<RulesParser::StringLitContext *>(ctx))
    return transformString(s->STRING()->getSymbol());
  if (dynamic_cast<RulesParser::BoolLitContext *>(ctx))
    return std::make_unique<BoolExpr>(range, ctx->getText() == "true");
  if (dynamic_cast<RulesParser::NullLitContext *>(ctx))
    return std::make_unique<NullExpr>(range);
  if (auto *l = dynamic_cast<RulesParser::ListLitContext *>(ctx)) {
    auto list = std::make_unique<ListExpr>(range);
    for (auto *e : l->expr())
      list->elements.push_back(transformExpr(e));
    return list;
  }
  if (auto *c = dynamic_cast<RulesParser::CallExprContext *>(ctx)) {
    auto call = std::make_unique<CallExpr>(range, c->fn->getText(), rangeOf(c->fn));
    for (auto *a : c->argument())
      call->args.push_back(transformArgument(a));
    return call;
  }
  if (auto *n = dynamic_cast<RulesParser::NameExprContext *>(ctx))
    return std::make_unique<NameExpr>(range, n->getText());
  if (auto *p = dynamic_cast<RulesParser::ParenExprContext *>(ctx))
    return transformExpr(p->expr());
  return std::make_unique<NullExpr>(range);
}

Argument Transformer::transformArgument(RulesParser::ArgumentContext *ctx) {
  Argument arg;
  arg.range = rangeOf(ctx);
  if (auto *b = dynamic_cast<RulesParser::BindingArgContext *>(ctx)) {
    arg.kind = Argument::Kind::Binding;
    arg.name = b->var->getText();
    arg.nameRange = rangeOf(b->var);
    arg.lo = transformExpr(b->range()->lo);
    arg.hi = transformExpr(b->range()->hi);
  } else if (auto *n = dynamic_cast<RulesParser::NamedArgContext *>(ctx)) {
    arg.kind = Argument::Kind::Named;
    arg.name = n->name->getText();
    arg.nameRange = rangeOf(n->name);
    arg.value = transformExpr(n->expr());
  } else if (auto *s = dynamic_cast<RulesParser::SizedArgContext *>(ctx)) {
    arg.kind = Argument::Kind::Sized;
    arg.value = transformExpr(s->value);
    arg.size = transformExpr(s->size);
  } else if (auto *p = dynamic_cast<RulesParser::PositionalArgContext *>(ctx)) {
    arg.value = transformExpr(p->expr());
  }
  return arg;
}

/// Decodes the escapes of a string token; `columns[i]` is the 0-based column, within the
/// token's line, of decoded character i.
static std::string decodeString(const std::string &raw, size_t tokenCol, std::vector<uint32_t> &columns) {
  std::string out;
  for (size_t i = 1; i + 1 < raw.size(); ++i) {
    char c = raw[i];
    size_t col = tokenCol + i;
    if (c == '\\' && i + 2 < raw.size()) {
      char next = raw[++i];
      c = next == 'n' ? '\n' : next == 't' ? '\t' : next;
    }
    out.push_back(c);
    columns.push_back(uint32_t(col));
  }
  return out;
}

std::string Transformer::plainString(antlr4::Token *token) {
  std::vector<uint32_t> columns;
  return decodeString(token->getText(), token->getCharPositionInLine(), columns);
}

std::unique_ptr<StringExpr> Transformer::transformString(antlr4::Token *token) {
  SourceRange tokenRange = rangeOf(token);
  auto str = std::make_unique<StringExpr>(tokenRange);
  std::vector<uint32_t> columns;
  std::string text = decodeString(token->getText(), token->getCharPositionInLine(), columns);
  uint32_t line = tokenRange.begin.line;
  uint32_t lineColOffset = token->getLine() == 1 ? origin_.colOffset : 0;
  auto rangeAt = [&](size_t from, size_t to) {
    SourceRange r;
    r.begin = {origin_.file, line, (from < columns.size() ? columns[from] : columns.empty() ? 0 : columns.back()) + 1 + lineColOffset};
    r.length = uint32_t(std::max<size_t>(1, to - from));
    return r;
  };
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find('{', i);
    if (open == std::string::npos)
      open = text.size();
    if (open > i) {
      StringPiece lit;
      lit.kind = StringPiece::Kind::Literal;
      lit.text = text.substr(i, open - i);
      lit.range = rangeAt(i, open);
      str->pieces.push_back(std::move(lit));
    }
    if (open == text.size())
      break;
    size_t close = text.find('}', open);
    if (close == std::string::npos) {
      diags_.error(rangeAt(open, open + 1), "unterminated '{' in name pattern");
      break;
    }
    std::string inner = text.substr(open + 1, close - open - 1);
    StringPiece piece;
    piece.range = rangeAt(open, close + 1);
    if (inner.find_first_not_of(" \t") == std::string::npos) {
      diags_.error(piece.range, "empty '{}' in name pattern");
      i = close + 1;
      continue;
    }
    // The interpolation is parsed on its own, its positions mapped back into this string.
    TextOrigin innerOrigin{origin_.file, line, columns[open] + 1 + lineColOffset, /*interpolation=*/true};
    antlr4::ANTLRInputStream input(inner);
    RulesLexer lexer(&input);
    SyntaxErrorListener listener(diags_, innerOrigin);
    lexer.removeErrorListeners();
    lexer.addErrorListener(&listener);
    antlr4::CommonTokenStream tokens(&lexer);
    RulesParser parser(&tokens);
    parser.removeErrorListeners();
    parser.addErrorListener(&listener);
    auto *tree = parser.interpolation();
    if (listener.count == 0) {
      if (auto *rest = dynamic_cast<RulesParser::RestCaptureContext *>(tree)) {
        piece.kind = StringPiece::Kind::RestCapture;
        piece.text = rest->IDENT()->getText();
      } else {
        auto *e = dynamic_cast<RulesParser::ExprInterpolationContext *>(tree);
        Transformer inner(diags_, innerOrigin);
        piece.kind = StringPiece::Kind::Interpolation;
        piece.expr = inner.transformExpr(e->expr());
      }
      str->pieces.push_back(std::move(piece));
    }
    i = close + 1;
  }
  return str;
}

/// Where the first byte that is not UTF-8 sits, if any: ANTLR's input stream throws on one.
std::optional<SourceLoc> firstInvalidUtf8(uint32_t file, llvm::StringRef text) {
  auto *bytes = reinterpret_cast<const llvm::UTF8 *>(text.data());
  uint32_t line = 1, col = 1;
  for (size_t i = 0; i < text.size();) {
    size_t n = llvm::getNumBytesForUTF8(bytes[i]);
    if (i + n > text.size() || !llvm::isLegalUTF8Sequence(bytes + i, bytes + i + n))
      return SourceLoc{file, line, col};
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
    i += n;
  }
  return std::nullopt;
}

/// Parses one file's text into `out`; returns false on syntax errors.
bool parseInto(uint32_t file, const std::string &text, Rulebook &out, DiagnosticEngine &diags, bool isTopFile) {
  TextOrigin origin{file, 1, 0};
  if (std::optional<SourceLoc> bad = firstInvalidUtf8(file, text)) {
    diags.error(SourceRange{*bad, 1}, "the file is not valid UTF-8 here");
    return false;
  }
  antlr4::ANTLRInputStream input(text);
  RulesLexer lexer(&input);
  SyntaxErrorListener listener(diags, origin);
  lexer.removeErrorListeners();
  lexer.addErrorListener(&listener);
  antlr4::CommonTokenStream tokens(&lexer);
  RulesParser parser(&tokens);
  parser.removeErrorListeners();
  parser.addErrorListener(&listener);
  auto *tree = parser.rulebook();
  if (listener.count != 0)
    return false;
  Transformer(diags, origin).transformRulebook(tree, out, isTopFile);
  return true;
}

/// Parses a loaded file and then its includes, depth first; `active` detects cycles.
void parseWithIncludes(uint32_t file, SourceManager &sources, DiagnosticEngine &diags, Rulebook &out,
                       bool isTopFile, llvm::StringSet<> &active) {
  std::string path = sources.name(file).str();
  active.insert(path);
  Rulebook local;
  if (parseInto(file, sources.text(file).str(), local, diags, isTopFile)) {
    if (isTopFile) {
      out.name = local.name;
      out.nameRange = local.nameRange;
      out.modelTypes = std::move(local.modelTypes);
      out.description = std::move(local.description);
      out.layouts = std::move(local.layouts);
    }
    for (const Include &inc : local.includes) {
      llvm::SmallString<256> target(llvm::sys::path::parent_path(path));
      llvm::sys::path::append(target, inc.path);
      std::string resolved = target.str().str();
      if (active.count(resolved)) {
        diags.error(inc.range, "include cycle: '" + inc.path + "' is already being included");
        continue;
      }
      auto loaded = sources.load(resolved);
      if (!loaded) {
        // "cannot include 'common/moe.rules': rulebooks/common/moe.rules: No such file or directory"
        std::error_code ec = llvm::errorToErrorCode(loaded.takeError());
        diags.error(inc.range, "cannot include '" + inc.path + "': " + resolved + ": " + ec.message());
        continue;
      }
      parseWithIncludes(*loaded, sources, diags, out, false, active);
    }
    // The including file's own items come after those of its includes.
    for (auto &p : local.params) out.params.push_back(std::move(p));
    for (auto &a : local.asserts) out.asserts.push_back(std::move(a));
    for (auto &b : local.blocks) out.blocks.push_back(std::move(b));
    for (auto &m : local.mappings) out.mappings.push_back(std::move(m));
    for (auto &i : local.includes) out.includes.push_back(std::move(i));
  }
  active.erase(path);
}

} // namespace

std::unique_ptr<ast::Rulebook> parseRulebookFile(llvm::StringRef path, SourceManager &sources,
                                                 DiagnosticEngine &diags) {
  auto file = sources.load(path);
  if (!file) {
    diags.error({}, llvm::toString(file.takeError()));
    return nullptr;
  }
  auto rulebook = std::make_unique<ast::Rulebook>();
  llvm::StringSet<> active;
  parseWithIncludes(*file, sources, diags, *rulebook, true, active);
  return rulebook;
}

std::unique_ptr<ast::Rulebook> parseRulebookText(llvm::StringRef name, std::string text,
                                                 SourceManager &sources, DiagnosticEngine &diags) {
  uint32_t file = sources.add(name.str(), std::move(text));
  auto rulebook = std::make_unique<ast::Rulebook>();
  llvm::StringSet<> active;
  parseWithIncludes(file, sources, diags, *rulebook, true, active);
  return rulebook;
}

} // namespace ckptmap
