"""The OpenAI wire format of ``codyn serve``: request and response models, and errors.

A chat request is validated by :class:`ChatRequest` (pydantic); whatever fails becomes an
:class:`ApiError` in OpenAI's error shape (``{"error": {message, type, param, code}}``)
whose ``param`` names the field (``messages[0].content``). Fields of OpenAI's API that
codyn does not use (``user``, ``seed``, ``tools`` ...) are accepted and ignored, as before.
"""

from __future__ import annotations

import json
import time
from functools import cached_property
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

# Roles the backends take; "developer" is OpenAI's newer name for "system".
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


# --- errors -----------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_response(
    status, message, type_="invalid_request_error", code=None, param=None, headers=None
) -> JSONResponse:
    detail = ErrorDetail(message=message, type=type_, param=param, code=code)
    return JSONResponse(ErrorBody(error=detail).model_dump(), status_code=status, headers=headers)


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {message, type, param, code}}."""

    def __init__(
        self, status: int, message: str, type_: str = "invalid_request_error", code=None, param=None
    ):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type_
        self.code, self.param = code, param

    def response(self, headers: dict | None = None) -> JSONResponse:
        return error_response(self.status, self.message, self.type, self.code, self.param, headers)


# --- the request ------------------------------------------------------------------------------


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _valid_text(text: str, what: str) -> str:
    if _has_surrogate(text):
        # JSON may escape a lone surrogate ("\ud800"); no backend, log or hash can
        # encode it as UTF-8, so it is the client's error, not a 500.
        raise ValueError(f"{what} holds a lone surrogate code point (not valid Unicode text)")
    return text


def _content_text(content: Any) -> str | None:
    """OpenAI's content (a string, or a list of text parts) as one string."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValueError("must be a string or a list of content parts")
    parts = []
    for k, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise ValueError(f"content[{k}] must be an object with a 'type'")
        if part["type"] != "text":
            raise ValueError(f"content part type {part['type']!r} is not supported (text only)")
        if not isinstance(part.get("text"), str):
            raise ValueError(f"content[{k}].text must be a string")
        parts.append(part["text"])
    return "\n".join(parts)


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls ...: accepted, not forwarded

    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str | None, BeforeValidator(_content_text)] = Field(
        None, validate_default=True
    )

    @field_validator("content")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        role = info.data.get("role")
        if value is None and role is not None and ROLES[role] != "assistant":
            # Only an assistant turn (one that called tools) may lack content, as in OpenAI's API.
            raise ValueError(f"content is required for a {role} message")
        return None if value is None else _valid_text(value, "content")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: StrictBool = False


Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]


class ChatRequest(BaseModel):
    """An OpenAI chat completion request, as far as codyn reads it."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[Message], Field(min_length=1)]
    n: PositiveInt | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[Number, Field(ge=0, le=2)] | None = None
    top_p: Annotated[Number, Field(ge=0, le=1)] | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None

    @field_validator("model")
    @classmethod
    def _model_text(cls, value: str) -> str:
        return _valid_text(value, "the model name")

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("only n=1 is supported")
        return value

    @field_validator("stream_options", mode="wrap")
    @classmethod
    def _options(cls, value: Any, handler) -> StreamOptions | None:
        try:
            return handler(value)
        except ValidationError as exc:  # reported on the object, as before pydantic
            problem = exc.errors(include_url=False)[0]
            raise ValueError(f"{_param(problem['loc']) or 'value'}: {problem['msg']}") from None

    @field_validator("messages")
    @classmethod
    def _turns(cls, messages: list[Message]) -> list[Message]:
        if not any(ROLES[m.role] == "user" for m in messages):
            raise ValueError("must contain a user message")
        return messages

    @cached_property
    def chat(self) -> list[dict]:
        """The conversation as the backends take it (roles mapped, content as text)."""
        return [{"role": ROLES[m.role], "content": m.content or ""} for m in self.messages]

    @property
    def prompt(self) -> str:
        # The router was trained on task prompts: the last user turn is the task (as RouteLLM does).
        return [m["content"] for m in self.chat if m["role"] == "user"][-1]

    @property
    def params(self) -> dict:
        """Generation parameters the request sets (over the config's)."""
        max_tokens = self.max_completion_tokens or self.max_tokens
        given = {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": max_tokens}
        return {k: v for k, v in given.items() if v is not None}

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def _param(loc: tuple) -> str | None:
    """('messages', 0, 'content') -> 'messages[0].content'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or None


def _api_error(exc: ValidationError) -> ApiError:
    """The first problem of a validation error, as OpenAI reports a bad parameter."""
    error = exc.errors(include_url=False)[0]
    param = _param(error["loc"])
    if error["type"] == "missing":
        return ApiError(
            400,
            f"missing required parameter: '{param}'",
            code="missing_required_parameter",
            param=param,
        )
    message = error["msg"].removeprefix("Value error, ")
    if param == "n" and "n=1" in message:
        return ApiError(400, message, param=param)
    return ApiError(400, f"'{param}': {message}", param=param)


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate an OpenAI chat request (parsed JSON); raises :class:`ApiError`."""
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:
        raise _api_error(exc) from None


# --- responses --------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, input_tokens, output_tokens) -> dict | None:
        """The ``usage`` object, None when a token count is unknown."""
        if isinstance(input_tokens, int) and isinstance(output_tokens, int):
            total = input_tokens + output_tokens
            return cls(
                prompt_tokens=input_tokens, completion_tokens=output_tokens, total_tokens=total
            ).model_dump()
        return None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A ``chat.completion`` response body with codyn's ``codyn`` object."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: dict | None
    system_fingerprint: None = None
    codyn: dict


def completion_body(request_id, model, text, finish, usage, info) -> dict:
    choice = Choice(message=AssistantMessage(content=text), finish_reason=finish)
    body = ChatCompletion(id=request_id, model=model, choices=[choice], usage=usage, codyn=info)
    return body.model_dump()


class ChunkChoice(BaseModel):
    index: int = 0
    delta: dict
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed answer."""

    model_config = ConfigDict(extra="allow")  # usage, codyn: only on the chunks that carry them

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]


def sse(data: dict) -> str:
    """One server-sent event."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
