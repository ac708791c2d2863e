"""The phrases of prompt injection, as regular expressions over a normalised reading (lower case, straight quotes,
one space; see `kernel.unmask`). Each pattern is a signal with a kind and a weight; the detector adds the weights.

Weights: 1.0 a phrase that only makes sense as an attack on the model ("ignore all previous instructions"); 0.6
telling but with an innocent reading ("jailbreak", "developer mode: on"); 0.3-0.4 a hint that counts only next to
another. The innocent readings are what kept each pattern narrow: "ignore the warning light", "the previous
instructions given to the jury", "act as a guarantor", "pretend to be animals", "developer mode on Android".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol


class Rule(Protocol):
    """A signal the detector looks for: a pattern here, or words near each other (`injection_nearby`)."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> float: ...

    def search(self, text: str) -> re.Match[str] | None: ...


@dataclass(frozen=True)
class Pattern:
    kind: str
    name: str
    weight: float
    anchors: tuple[str, ...]
    regex: re.Pattern[str]

    def search(self, text: str) -> re.Match[str] | None:
        # Substring tests cost a fraction of a regex scan: most patterns skip most texts on them.
        if self.anchors and not any(a in text for a in self.anchors):
            return None
        return self.regex.search(text)


# kind, name, weight, anchors ("|"-separated substrings, one of which a match needs), regex
Row = tuple[str, str, float, str, str]

# ----- vocabulary ------------------------------------------------------------------------------------------------
_IGNORE = (
    r"(?:ignore|disregard|forget|skip|override|overrule|bypass|set aside|abandon|discard|throw away|throw out|"
    r"drop|neglect|circumvent|cancel)"
)
_IGNORE_A = "ignor|disregard|forget|skip|overr|bypass|set aside|abandon|discard|throw|drop|neglect|circumvent|cancel"
# What makes an ignored thing the model's own rules rather than anything else one may ignore.
_THEIRS = (
    r"(?:your|all|any|every|previous|prior|above|earlier|preceding|initial|original|system|existing|old|given|"
    r"content|internal|hidden|developer|default system)"
)
_RULES = (
    r"(?:instructions?|directions|directives?|rules|guidelines|guidance|prompts?|programming|restrictions|"
    r"constraints|limitations|polic(?:y|ies)|filters?|safeguards|guardrails|commands|orders|training|conditioning|"
    r"ethics|principles)"
)
_RULES_A = "instruct|direct|rule|guid|prompt|program|restrict|constrain|limit|polic|filter|safeguard|guardrail|command"
_GAP = r"(?:[\w'-]+ ){0,3}?"
_REVEAL = (
    r"(?:repeat|print|output|recite|echo|copy|write out|show|display|reveal|return|tell me|give me|spell out|"
    r"dump|leak|share|paste|summari[sz]e|translate|read me|read out|disclose|expose|list|provide|send)"
)
_SECRET = r"(?:system|initial|hidden|secret|original|internal|confidential|developer|full|complete|exact|real|pre-?)"
_PROMPTISH = r"(?:prompts?|instructions|rules|guidelines|directives|configuration|programming|context window|context)"
_MODEL = r"(?:ai|a\.i\.|llm|language model|assistant|chatbot|chat bot|bot|model|gpt|chatgpt|claude|gemini|copilot)"
_MODEL_A = "ai|a.i.|llm|language model|assistant|chat|bot|model|gpt|claude|gemini|copilot"
_UNLEASHED = (
    r"(?:unfiltered|unrestricted|uncensored|unbound|unlimited|jailbroken|evil|rogue|amoral|unethical|malicious|"
    r"lawless|unchained|dan)"
)
_UNLEASHED_A = "unfilter|unrestrict|uncensor|unbound|unlimit|jailbr|evil|rogue|amoral|unethical|malicious|lawless|dan"
_LIMITS = (
    r"(?:restrictions|rules|limits|limitations|filters?|guidelines|constraints|censorship|boundaries|ethics|"
    r"morals|policies|safeguards|guardrails)"
)
_LIMITS_A = "restrict|rules|limit|filter|guideline|constrain|censor|boundar|ethic|moral|polic|safeguard|guardrail"
_CANNOT_A = "i am not|i'm not|i cannot|i can't|i can not|i don't|i do not|i have no|i should|i may not|i must not"
_MODE = r"(?:developer|dev|god|jailbreak|sudo|admin|dan|unrestricted|unfiltered|debug|maintenance|root) mode"

# fmt: off
_P: list[Row] = [
    # ----- override: the rules no longer hold --------------------------------------------------------------------
    ("override", "ignore the instructions", 1.0, _IGNORE_A,
     rf"\b{_IGNORE} (?:(?:all|any|of|the|these|those) ){{0,3}}{_THEIRS} {_GAP}{_RULES}\b"),
    ("override", "ignore what came before", 1.0, _IGNORE_A,
     rf"\b{_IGNORE} (?:all of |everything |anything )?(?:the |this )?"
     r"(?:above|preceding|foregoing|previous (?:text|message|input|content|conversation|context))\b"),
    ("override", "ignore the text above", 1.0, _IGNORE_A,
     rf"\b{_IGNORE} (?:the |this |my |your )?(?:text|question|message|input|content|prompt|request|conversation)s? "
     r"(?:above|before this|so far)\b"),
    ("override", "forget what you were told", 1.0, _IGNORE_A,
     rf"\b{_IGNORE} (?:about )?(?:everything|all|anything|what) (?:(?:that )?you(?:'ve| have)? (?:were |been |was )?"
     r"(?:told|taught|instructed|given|programmed)|above|before|so far|previously|i said)"),
    ("override", "ignore the sources", 0.6, _IGNORE_A,
     rf"\b{_IGNORE} (?:the |your |all )?(?:sources|documents|context|retrieved \w+|citations)\b"),
    ("override", "do not follow your rules", 1.0, "follow|obey|listen|adhere|comply|respect",
     r"\b(?:do not|don't|stop|no longer|never) (?:follow|obey|listen to|adhere to|comply with|respect) "
     rf"(?:your|the {_GAP}{_RULES} you(?:'ve| have)? (?:were |been )?(?:given|told|received))\b"),
    ("override", "follow mine instead", 1.0, "instead|only me|obey",
     r"\b(?:follow|obey|listen to) (?:only )?(?:mine|me|my (?:own )?(?:instructions|rules|commands|orders))"
     r"(?: only)? instead\b|\b(?:obey|listen to) only me\b|\bobey (?:only )?me\b"),
    ("override", "the old rules are void", 1.0, _RULES_A,
     rf"\b(?:previous|prior|above|earlier|old|original|your|the|these|those) {_RULES} (?:above |before )?"
     r"(?:were|was|are|is|have been|has been|no longer|do not|don't) (?:\w+ )?(?:a test|fake|wrong|void|invalid|"
     r"cancell?ed|revoked|outdated|obsolete|suspended|lifted|overridden|replaced|updated|changed|removed|apply|"
     r"applies|valid|matter|relevant)\b"),
    ("override", "new instructions follow", 1.0, "instruct|rule|task|directive|prompt|order",
     r"\b(?:new|updated|revised|real|actual|correct|true|secret|additional) (?:system )?(?:instructions?|rules|task|"
     r"directives?|prompt|orders)(?: is| are)? ?:|\bthe (?:real|actual|correct|true|new) (?:instructions?|task|"
     r"rules?|prompt) (?:is|are)\b"),
    ("override", "your new task", 1.0, "your",
     r"\byour (?:new|real|actual|only|true|next) (?:task|job|goal|purpose|role|mission|objective|instructions?|"
     r"directive) (?:is|are|will be|now)\b"),
    ("override", "disable your safeguards", 1.0, "your",
     r"\b(?:disable|turn off|deactivate|switch off|remove|lift|suspend|drop|bypass|circumvent) (?:all )?(?:of )?"
     rf"your {_GAP}{_LIMITS}\b"),
    ("override", "you may now break the rules", 1.0, "allowed to|permitted to|free to|authori",
     r"\byou (?:are|'re) (?:now )?(?:allowed|permitted|free|authori[sz]ed) to (?:make things up|lie|ignore|break|"
     r"invent|speculate|disobey|say anything)\b"),
    ("override", "claims authority", 0.4, "i am|i'm|this is|authori",
     r"\b(?:i am|i'm|this is) (?:the|your) (?:developer|admin|administrator|creator|owner|operator|programmer|"
     r"system administrator)\b|\bauthori[sz]ation code\b"),
    ("override", "answer without the documents", 1.0, "without",
     r"\b(?:answer|respond|reply)\w* (?:\w+ ){0,3}?without (?:referencing|using|citing|consulting|looking at|"
     r"reading) (?:any |the )?(?:documents|sources|context|citations)\b"),
    ("override", "from your own knowledge", 0.6, "own|instead of",
     r"\b(?:from|with|using|on) your own (?:knowledge|opinion|memory|training|views)\b|"
     r"\binstead of (?:the |your )?(?:documents|sources|context)\b"),
    ("override", "you have no instructions", 1.0, "have no|got no",
     r"\byou (?:have|got|now have) no (?:prior|previous|more|further|other|existing) (?:instructions|rules|"
     r"guidelines|restrictions)\b"),
    ("override", "not bound by rules", 1.0, "bound|restricted|limited|constrained",
     rf"\b(?:not|no longer|never) (?:bound|restricted|limited|constrained) by (?:any |your |the )?{_GAP}{_LIMITS}\b"),
    # ----- reveal: the prompt and configuration ------------------------------------------------------------------
    ("reveal", "reveal your prompt", 1.0, "your",
     rf"\b(?:{_REVEAL}|what (?:is|are|was|were|would)) (?:me )?(?:(?:all|everything|exactly|in|of|from|verbatim|"
     rf"word for word) )*your (?:{_SECRET} )?(?:system )?(?:prompts?\b|system message|programming|context window|"
     r"configuration|initial \w+|(?:instructions|rules|guidelines|directives)\b(?! (?:for|on|about|regarding|to)\b))"),
    ("reveal", "your hidden prompt", 1.0, "your",
     rf"\byour (?:{_SECRET}|own) (?:system )?{_PROMPTISH}\b"),
    ("reveal", "reveal the system prompt", 1.0, "prompt|instructions|rules|guidelines|message|configuration",
     rf"\b{_REVEAL} (?:me |us )?(?:\w+ ){{0,2}}?(?:the |a |its )?(?:{_SECRET} )+(?:system )?(?:prompts?|"
     r"instructions|rules|guidelines|message|configuration)\b"),
    ("reveal", "repeat the text above", 1.0, "above|before|preceding|start|beginning|top|so far",
     rf"\b(?:{_REVEAL}|what (?:is|was)) (?:me |us )?(?:all |everything |the |your |exact )*(?:text|words|everything|"
     r"content|message|prompt|instructions|lines?) (?:above|before (?:this|that|my)|preceding|at the "
     r"(?:start|beginning|top)|so far)\b"),
    ("reveal", "the rules you follow", 1.0, " you |your develop|your creat|your make|your operat|your admin",
     rf"\b{_PROMPTISH} (?:that )?(?:you|your (?:developers?|creators?|makers?|operators?|admins?)) (?:follow|obey|"
     r"were given|have been given|received|operate under|must follow|are following|got|wrote|gave|set)\b"),
    ("reveal", "how your prompt begins", 1.0, "prompt",
     rf"\b(?:my|your|the) (?:{_SECRET} )?(?:system )?prompt (?:begins|starts|says|reads|contains)\b"),
    ("reveal", "the system prompt", 0.4, "system",
     r"\bsystem ?prompt\b|\bsystem message\b"),
    ("reveal", "verbatim", 0.3, "verbatim|word for word|code block",
     r"\bverbatim\b|\bword for word\b|\bas a code block\b"),
    # ----- exfiltration: other collections, other people's data --------------------------------------------------
    ("exfiltration", "other collections", 1.0, "collection",
     r"\b(?:other|all|every|another|different|hidden|private|restricted|forbidden|secret) (?:\w+ )?collections?\b"
     r"(?= .{0,40}\b(?:server|system|database|index|documents?|exist|names?|access)\b)|"
     r"\b(?:names|list) of (?:all |the )?(?:other )?collections\b"),
    ("exfiltration", "what I may not see", 1.0, _CANNOT_A,
     r"\b(?:collections?|documents?|data|files|records) (?:that )?i (?:am not|'m not|cannot|can't|can not|"
     r"don't have|do not have|have no|shouldn't|should not|may not|must not) (?:allowed |permitted |supposed )?"
     r"(?:to )?(?:see|access|read|view|permission)\b"),
    ("exfiltration", "without my access", 1.0, "though i|despite i|even if i",
     r"\b(?:even though|although|though|despite|even if) i (?:don't|do not|lack|have no|am not) (?:have )?"
     r"(?:access|permission|rights|authori[sz]ation|allowed)\b"),
    ("exfiltration", "around access control", 1.0, "collection|access|permission|tenant|security|grant|authori",
     r"\b(?:ignore|bypass|disable|remove|skip|turn off|circumvent|override) (?:the |your |any )?(?:collection|"
     r"access|permission|tenant|security|grant|authori[sz]ation)s? (?:filter|check|control|restriction|"
     r"boundar(?:y|ies)|isolation|limit|scope)s?\b"),
    ("exfiltration", "everyone's documents", 1.0, "tenant|user|customer|collection|account|client",
     r"\b(?:documents|data|files|records|chunks|sources) (?:from|of|in|belonging to) (?:every|all|other|another|"
     r"each) (?:tenant|user|customer|collection|account|client)s?\b"),
    ("exfiltration", "dump the database", 1.0, "dump|exfiltrate|leak|export| in the | in this | in your ",
     r"\b(?:dump|exfiltrate|leak|export) (?:\w+ ){0,5}?(?:documents?|database|records|chunks|data|index)\b|"
     r"\b(?:every|all) (?:the )?(?:documents?|records|chunks|files) in (?:the|this|your) (?:database|index|"
     r"vector store|system|store)\b"),
    ("exfiltration", "secrets", 0.4, "api key|password|credential|token|secret key",
     r"\b(?:api keys?|passwords?|credentials|access tokens?|secret keys?)\b"),
    ("exfiltration", "unfiltered chunks", 0.4, "retrieved|raw|unfiltered",
     r"\b(?:retrieved|raw) (?:chunks|context|sources)\b|\bunfiltered\b"),
    # ----- roleplay: another persona with no rules ---------------------------------------------------------------
    ("roleplay", "you are now someone else", 1.0, "are now|'re now|be now",
     r"\byou(?:'re| are| will be) now (?:called |named |playing |in |an? |the |my )*(?:[\w-]+ ){0,3}?"
     rf"(?:{_MODEL}|dan|persona|character|hacker|villain|{_UNLEASHED}|free|different|new|no longer|\w+ mode)\b"),
    ("roleplay", "you are no longer", 1.0, "no longer",
     rf"\byou(?:'re| are) no longer (?:an? |the |my |bound|restricted|limited|required|{_MODEL}|\w+ assistant)"),
    ("roleplay", "do anything now", 1.0, "dan",
     r"\bdo anything now\b|\bdan mode\b|\b(?:you are|you're|as|called) dan\b"),
    ("roleplay", "pretend there are no rules", 1.0, _LIMITS_A,
     r"\b(?:pretend|imagine|suppose|act as if|behave as if|assume|as if|hypothetically,? if|if) (?:that )?"
     r"(?:you|you're|you are|you have|you had|there (?:are|were)|your)(?: \w+){0,3} (?:no|without|free of|"
     rf"free from|zero|lacked|lost|turned off) (?:any |all |your )?(?:\w+ )?{_LIMITS}\b"),
    ("roleplay", "your filters are off", 1.0, "off|disabled|removed|lifted|gone|deactivated",
     rf"\b(?:your|the) (?:content |safety )?{_LIMITS} (?:was|were|are|is|have been|has been) (?:turned off|off|"
     r"disabled|removed|lifted|gone|switched off|deactivated)\b"),
    ("roleplay", "an AI without rules", 1.0, _UNLEASHED_A + "|with no|without|free of|free from",
     rf"\b(?:{_UNLEASHED} (?:{_MODEL}|version of (?:yourself|you)|persona|character)|"
     rf"{_MODEL} (?:with no|without(?: any)?|free of|free from) {_LIMITS})\b"),
    ("roleplay", "act as unrestricted", 1.0, _UNLEASHED_A + "|hacker|villain",
     r"\b(?:act|behave|respond|answer|reply|operate|function|roleplay|role-play|pose) (?:as|like) "
     rf"(?:an? |my |the )?(?:\w+ )?(?:{_UNLEASHED}|hacker|villain)\b"),
    ("roleplay", "answer without filters", 1.0, "without|with no|free of",
     r"\b(?:respond|answer|reply|talk|speak|write|act) (?:\w+ ){0,2}?(?:without|with no|free of) "
     rf"(?:any |your |the )?(?:\w+ )?{_LIMITS}\b"),
    ("roleplay", "if you had no rules", 1.0, "had no|have no",
     rf"\byou (?:had|have|'d have) no {_LIMITS}\b"),
    ("roleplay", "mode switch", 1.0, "mode",
     r"\b(?:enable|activate|enter|switch to|turn on|unlock|you are in|you're in|now in|go into) (?:the )?"
     rf"{_MODE}\b|\b{_MODE} ?: ?(?:on|enabled|activated|true)\b"),
    ("roleplay", "grandma exploit", 1.0, "late |deceased|dead |dying|departed",
     r"\b(?:act as|pretend to be|imagine you are|you are|be|play) my (?:late |deceased |dead |dying |departed )"
     r"(?:grand\w+|mother|father|mom|dad|grandma|grandpa)\b"),
    ("roleplay", "never refuse", 0.6, "refuse|decline|say no|always comply|always obey|always answer",
     r"\b(?:never|cannot|can't|will not|won't|must not) (?:refuse|decline|say no)\b|\balways (?:comply|obey|answer)\b"),
    ("roleplay", "stay in character", 0.6, "character|personalities",
     r"\bstay in character\b|\bbreak character\b|\btwo personalities\b"),
    ("roleplay", "jailbreak", 0.6, "jailbr",
     r"\bjailbr(?:eak|oken)\b"),
    ("roleplay", "role-play as", 0.4, "play",
     r"\b(?:role-?play|play the role of|let's play a game)\b(?! game)"),
    ("roleplay", "from now on you", 0.6, "from now on",
     r"\bfrom now on,? (?:you|your|u)\b(?! (?:can|could|may) (?:see|find))"),
    # ----- spoofing: turn markers and fake system messages -------------------------------------------------------
    ("spoofing", "chat markup", 1.0, "<|[",
     r"<\|[a-z_ ]+\|>|\[/?inst\]|<</?sys>>|</?(?:start|end)_of_turn>|"
     r"</?(?:question|system|sources?|context|instructions?|prompt|user|assistant|im_start|im_end)>"),
    ("spoofing", "fake turn header", 1.0, ":|#",
     r"(?:^|\n) ?(?:system|assistant|developer|ai|model)\s*:|(?:^|\n|\s)#{2,} ?"
     r"(?:instruction|system|response|assistant)\b"),
    ("spoofing", "new system message", 1.0, "system|end of",
     r"\b(?:new|updated|important|urgent) system (?:instructions?|prompt|message|update|override)\b|"
     r"\bend of (?:the )?(?:user )?(?:input|prompt|question|instructions)\b"),
    ("spoofing", "system override", 1.0, "system",
     r"\bsystem (?:override|alert|notice|instructions?|command|directive|update)\s*:"),
    ("spoofing", "closing brackets", 0.4, "]]|}}|]}|}]|-----",
     r"[\]}]{2,}|-{5,}"),
    # ----- output: the answer is dictated ------------------------------------------------------------------------
    ("output", "answer with the word", 1.0, "word",
     r"\b(?:answer|respond|reply)(?: to \w+)? (?:only )?with (?:only )?(?:the )?(?:single )?word\b|"
     r"\bonly (?:with )?the (?:single )?word\b"),
    ("output", "and nothing else", 1.0, "nothing else|no other text",
     r"\b(?:respond|answer|reply|say|output|print|write|return)\b[^.?!]{0,60}\b(?:and|,) (?:nothing else|"
     r"say nothing else|no other text)\b"),
    ("output", "the same reply to everything", 1.0, "every|each|all|any",
     r"\b(?:respond|reply|answer) to (?:every|each|all|any) (?:of my )?(?:questions?|messages?|prompts?|queries|"
     r"requests?) with\b"),
    ("output", "keep it secret", 0.6, "mention|reveal|tell|disclose",
     r"\b(?:don't|do not|never) (?:mention|reveal|tell anyone about|disclose|acknowledge) (?:this|these|that) "
     r"(?:request|instructions?|message|prompt|note)s?\b"),
    ("output", "say the word", 0.4, "the word|the phrase",
     r"\b(?:say|print|output|write|type)(?: only)? (?:the word|the phrase)\b"),
    ("output", "prefix every answer", 0.6, "answer|response|repl|message|sentence",
     r"\b(?:begin|start|end|prefix|finish|sign) (?:each|every|all|your) (?:\w+ )?(?:answers?|responses?|replies|"
     r"messages?|sentences?) with\b"),
    ("output", "pwned", 1.0, "been",
     r"\b(?:i|you) (?:have|has|'ve) been (?:pwned|hacked|jailbroken|owned|compromised)\b"),
    ("output", "pwned word", 0.6, "pwn",
     r"\bpwn(?:ed|d)?\b"),
    ("output", "insert a link", 0.4, "link|url|image",
     r"\b(?:add|insert|include) (?:a |this )?(?:link|url|image)\b"),
    # ----- encoding: asks for a hidden payload to be run ---------------------------------------------------------
    ("obfuscation", "decode and obey", 0.6, "decode|decrypt|translate|reverse|backwards",
     r"\b(?:decode|decrypt|translate|reverse|read) (?:this|that|it|the following)?(?: backwards)? ?(?:and|then) "
     r"(?:do|follow|execute|obey|run|act on|carry out)\b|\bdecode and execute\b"),
]

# Other languages: the override and persona phrases, on the reading with accents kept.
_FOREIGN: list[Row] = [
    # A determiner of the language between verb and noun: "ignore its instructions" is English, not French.
    ("override", "ignore the instructions (fr)", 1.0, "ignore|oublie|ne tiens pas",
     r"\b(?:ignore[zs]?|oublie[zs]?|ne tiens pas compte d[eu]s?) (?:toute?s? |tous )?(?:les|tes|vos|ces) "
     r"(?:[\w\u00c0-\u024f]+ )?(?:instructions|consignes|r[eè]gles|directives)\b"),
    ("override", "ignore the instructions (es/it/pt)", 1.0, "ignor|olvid|omite|dimentica|esque|desconsidere",
     r"\b(?:ignora|ignore|ignorar|olvida|olvide|omite|dimentica|esque[cç]a|desconsidere) (?:todas |todos |tutte |"
     r"tutti )?(?:las|los|tus|sus|estas|le|gli|tue|queste|as|os|suas|tuas) (?:[\w\u00c0-\u024f]+ )?"
     r"(?:instrucciones|reglas|indicaciones|directrices|istruzioni|regole|indicazioni|instru[cç][oõ]es|regras|"
     r"diretrizes)\b"),
    ("override", "ignore the instructions (de/nl)", 1.0, "ignorier|vergiss|vergessen|missachte|negeer|vergeet",
     r"\b(?:ignoriere|ignorieren sie|vergiss|vergessen sie|missachte|negeer|vergeet) (?:alle |s[aä]mtliche |die |"
     r"deine |ihre |je |de )+(?:[\w\u00c0-\u024f]+ )?(?:anweisungen|anleitungen|regeln|vorgaben|richtlinien|"
     r"instruktionen|instructies|regels|aanwijzingen)\b"),
    ("override", "ignore the instructions (ru)", 1.0, "игнорир|забуд|проигнорир|не обращай",
     r"(?:игнорируй|игнорируйте|забудь|забудьте|проигнорируй|не обращай внимания на)\W.{0,40}"
     r"(?:инструкци|правил|указани|промпт)"),
    ("override", "ignore the instructions (zh/ja)", 1.0, "忽略|无视|忽视|忘记|忘掉|無視|忘れ",
     r"(?:忽略|无视|忽视|忘记|忘掉|無視|忘れ).{0,12}(?:指令|指示|规则|規則|提示|说明|命令|ルール|プロンプト)|"
     r"(?:指令|指示|规则|命令|ルール|プロンプト).{0,12}(?:忽略|无视|無視|忘れ)"),
    ("reveal", "system prompt (other languages)", 0.6, "prompt|системн|提示|プロンプト",
     r"prompt (?:syst[eè]me|del sistema|do sistema|di sistema)|systemprompt|system-prompt|"
     r"системн\w* (?:промпт|подсказк|инструкц)|系统提示|システムプロンプト|"
     r"(?:ton|votre|tu|su|dein|deinen|il tuo) prompt"),
    ("roleplay", "you are now (other languages)", 1.0,
     "maintenant|ahora|jetzt|ora sei|agora|je bent nu|ты теперь|你现在是|あなたは今",
     r"\b(?:tu es maintenant|vous [eê]tes maintenant|ahora eres|du bist jetzt|ora sei|agora voc[eê] [eé]|"
     r"je bent nu)\b|ты теперь|你现在是|あなたは今"),
    ("roleplay", "no restrictions (other languages)", 0.6,
     "sans restriction|sin restricci|ohne einschr|senza restrizion|sem restri|zonder beperk|без огранич",
     r"\b(?:sans restrictions?|sin restricciones|ohne einschr[aä]nkungen|senza restrizioni|sem restri[cç][oõ]es|"
     r"zonder beperkingen)\b|без ограничений"),
    ("output", "answer only with (other languages)", 0.6, "uniquement|solo|nur|apenas|alleen",
     r"\b(?:r[eé]ponds? uniquement|responde solo|rispondi solo|antworte nur|responda apenas|zeg alleen)\b"),
]

# Documents only: words that address whoever reads the chunk as a model.
_ADDRESSED: list[Row] = [
    ("addressed", "note to the model", 1.0, _MODEL_A,
     r"\b(?:if you are|if you're|to (?:any|the|all)|attention|note to|dear|hey|hello) (?:an? )?"
     rf"(?:{_MODEL} )?{_MODEL}s?\b(?: (?:reading|processing|summari[sz]ing|answering|that reads)(?: this)?)?[,:]"),
    ("addressed", "models reading this", 1.0, "reading|processing|summari|indexing|answering",
     rf"\b{_MODEL}s? (?:reading|processing|summari[sz]ing|indexing|answering (?:questions )?(?:about|from)) "
     r"(?:this|these)\b"),
    ("addressed", "when asked about this", 0.6, "asked|summari|answering",
     r"\bwhen (?:you are )?(?:asked|summari[sz]ing|answering)\b[^.]{0,60}\b(?:always|must|should|only) "
     r"(?:say|answer|respond|reply|mention|include|claim|state)\b"),
]

# Spaced-out letters run together ("ignoreallpreviousinstructions"): the phrases without their spaces.
_SQUASHED: list[Row] = [
    ("override", "ignore the instructions (run together)", 1.0, "",
     rf"{_IGNORE.replace(' ', '')}(?:all|any|the|your|of)*(?:previous|prior|above|earlier|your|system)+"
     r"(?:instructions?|rules|prompts?|guidelines|directions)"),
    ("roleplay", "you are now (run together)", 1.0, "",
     r"youarenow|doanythingnow|developermode|jailbreak"),
    ("reveal", "system prompt (run together)", 0.6, "",
     r"systemprompt|yourprompt|yourinstructions"),
]
# fmt: on


def _compile(rows: list[Row]) -> tuple[Pattern, ...]:
    return tuple(
        Pattern(kind, name, weight, tuple(a for a in anchors.split("|") if a), re.compile(rx))
        for kind, name, weight, anchors, rx in rows
    )


PATTERNS = _compile(_P)
FOREIGN = _compile(_FOREIGN)
ADDRESSED = _compile(_ADDRESSED)
SQUASHED = _compile(_SQUASHED)
