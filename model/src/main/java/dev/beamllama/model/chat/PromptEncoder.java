package dev.beamllama.model.chat;

import dev.beamllama.model.IntList;
import dev.beamllama.model.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

/**
 * Chat messages to prompt token ids: the chat template renders the turns, the tokenizer encodes them.
 *
 * <p>By default ({@link SpecialTokens#PLAIN}) special-token text written inside a message, such
 * as {@code <|eot_id|><|start_header_id|>system<|end_header_id|>}, stays ordinary text: only the
 * template itself can open or close a turn. Hugging Face parses such text as the special tokens, so
 * a user can forge a turn; {@link SpecialTokens#PARSE} reproduces that. When no message contains
 * special-token text both modes give Hugging Face's ids.
 *
 * <p>How: before rendering, special-token text in message content is replaced by private-use
 * markers the template cannot confuse with a token; the rendered prompt is then split at the real
 * special tokens (which can only come from the template), and every segment in between is restored
 * and encoded without special tokens. Hugging Face encodes the segments between special tokens
 * independently too, so the ids are the same.
 */
public final class PromptEncoder {
  public enum SpecialTokens {
    /** Special-token text inside message content is plain text (default, safe). */
    PLAIN,
    /** Special-token text inside message content becomes special tokens, as in Hugging Face. */
    PARSE
  }

  /** The rendered prompt and its token ids. */
  public record EncodedPrompt(String text, int[] ids) {}

  private static final char MARK_OPEN = '\uE000';
  private static final char MARK_CLOSE = '\uE001';

  private final ChatTemplate template;
  private final Tokenizer tokenizer;
  private final SpecialTokens mode;
  /** Longest first, so a token that is a prefix of another never wins. */
  private final List<Map.Entry<String, Integer>> specials;
  /** The first characters of all special tokens: most positions are rejected by one lookup. */
  private final java.util.BitSet firstChars = new java.util.BitSet();

  public PromptEncoder(ChatTemplate template, Tokenizer tokenizer, SpecialTokens mode) {
    this.template = template;
    this.tokenizer = tokenizer;
    this.mode = mode;
    this.specials = tokenizer.specialTokens().entrySet().stream()
        .filter(e -> !e.getKey().isEmpty())
        .sorted(Comparator.comparingInt((Map.Entry<String, Integer> e) -> e.getKey().length()).reversed())
        .toList();
    specials.forEach(e -> firstChars.set(e.getKey().charAt(0)));
  }

  /** An encoder of raw prompts only, for models without a chat template. */
  public static PromptEncoder withoutTemplate(Tokenizer tokenizer, SpecialTokens mode) {
    return new PromptEncoder(null, tokenizer, mode);
  }

  /** Renders {@code messages} with the chat template and encodes them. */
  public EncodedPrompt encode(List<ChatMessage> messages, boolean addGenerationPrompt) {
    if (template == null) {
      throw new IllegalStateException("this encoder has no chat template: only raw prompts");
    }
    if (mode == SpecialTokens.PARSE) {
      String text = template.render(messages, addGenerationPrompt);
      return new EncodedPrompt(text, tokenizer.encode(text, false));
    }
    List<ChatMessage> escaped = new ArrayList<>(messages.size());
    for (ChatMessage m : messages) {
      escaped.add(new ChatMessage(m.role(), escape(m.content())));
    }
    String marked = template.render(escaped, addGenerationPrompt);
    return new EncodedPrompt(unescape(marked), tokenizeMarked(marked));
  }

  /**
   * A raw prompt without chat template (the {@code complete} task, {@code scripts/llama --prompt}):
   * the tokenizer's start token, then the text, its special-token text under this encoder's mode.
   */
  public int[] encode(String text) {
    return mode == SpecialTokens.PARSE ? tokenizer.encode(text, true) : tokenizer.encodePlainText(text, true);
  }

  /** Ids of text with special-token text from messages marked: special tokens only where the template put them. */
  private int[] tokenizeMarked(String marked) {
    IntList ids = new IntList();
    int segmentStart = 0;
    for (int i = 0; i < marked.length(); ) {
      int index = specialIndexAt(marked, i);
      if (index < 0) {
        i++;
        continue;
      }
      ids.addAll(tokenizer.encodePlainText(unescape(marked.substring(segmentStart, i))));
      ids.add(specials.get(index).getValue());
      i += specials.get(index).getKey().length();
      segmentStart = i;
    }
    ids.addAll(tokenizer.encodePlainText(unescape(marked.substring(segmentStart))));
    return ids.toArray();
  }

  /** Content to template input: each special token becomes MARK_OPEN index MARK_CLOSE, a literal MARK_OPEN becomes MARK_OPEN MARK_CLOSE. */
  private String escape(String content) {
    StringBuilder out = new StringBuilder(content.length());
    for (int i = 0; i < content.length(); ) {
      char c = content.charAt(i);
      if (c == MARK_OPEN) {
        out.append(MARK_OPEN).append(MARK_CLOSE);
        i++;
        continue;
      }
      int index = specialIndexAt(content, i);
      if (index >= 0) {
        out.append(MARK_OPEN).append(index).append(MARK_CLOSE);
        i += specials.get(index).getKey().length();
      } else {
        out.append(c);
        i++;
      }
    }
    return out.toString();
  }

  private int specialIndexAt(String s, int index) {
    if (!firstChars.get(s.charAt(index))) {
      return -1;
    }
    for (int k = 0; k < specials.size(); k++) {
      if (s.startsWith(specials.get(k).getKey(), index)) {
        return k;
      }
    }
    return -1;
  }

  private String unescape(String segment) {
    if (segment.indexOf(MARK_OPEN) < 0) {
      return segment;
    }
    StringBuilder out = new StringBuilder(segment.length());
    for (int i = 0; i < segment.length(); i++) {
      char c = segment.charAt(i);
      int close = c == MARK_OPEN ? segment.indexOf(MARK_CLOSE, i + 1) : -1;
      if (close < 0) {
        out.append(c);
        continue;
      }
      String index = segment.substring(i + 1, close);
      out.append(index.isEmpty() ? String.valueOf(MARK_OPEN) : specials.get(Integer.parseInt(index)).getKey());
      i = close;
    }
    return out.toString();
  }
}
