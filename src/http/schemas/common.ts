// Shared response shapes: FastAPI's `{"detail": ...}` errors and a plain message.
import { Type } from 'typebox'

export const ErrorResponse = Type.Object(
  {
    detail: Type.String({ description: 'What went wrong, for people.' }),
    code: Type.String({ description: 'A stable machine-readable error code.' }),
  },
  { $id: 'ErrorResponse', description: "An error, in FastAPI's shape plus a stable code." },
)

export const ValidationErrorResponse = Type.Object(
  {
    detail: Type.Array(
      Type.Object({
        loc: Type.Array(Type.Union([Type.String(), Type.Integer()])),
        msg: Type.String(),
        type: Type.String(),
      }),
    ),
    code: Type.Literal('validation_error'),
  },
  { $id: 'ValidationErrorResponse', description: "Request validation failed (FastAPI's 422 shape)." },
)

export const MessageResponse = Type.Object({ message: Type.String() })

export const errorRef = Type.Ref('ErrorResponse')
export const validationErrorRef = Type.Ref('ValidationErrorResponse')

export const oauthErrorRef = Type.Ref('OAuthErrorResponse')
